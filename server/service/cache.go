package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/pipeline"
	"github.com/go-arcade/arcade/server/lifecycle"
	"github.com/go-arcade/arcade/server/objects"
	"github.com/go-arcade/arcade/server/store"
)

// Job caches, kept by the server through the storage plugin (the artifact
// store), per pipeline and branch. A job reads its branch's entries, then
// the default branch's; it writes its branch's. A run of untrusted origin
// reads and never writes. Entries past the total bound go, least recently
// used first.

// CacheConfig bounds the caches.
type CacheConfig struct {
	// MaxBytes bounds all entries together (0: 10 GiB); EntryMaxBytes one
	// entry (0: 2 GiB).
	MaxBytes      int64
	EntryMaxBytes int64
	// DefaultBranch is the branch every branch reads the entries of, for
	// pipelines whose source names none (0: main).
	DefaultBranch string
}

// UseCache sets how caches are bounded; call it before serving.
func (s *Service) UseCache(c CacheConfig) {
	if c.MaxBytes <= 0 {
		c.MaxBytes = 10 << 30
	}
	if c.EntryMaxBytes <= 0 {
		c.EntryMaxBytes = 2 << 30
	}
	if c.DefaultBranch == "" {
		c.DefaultBranch = "main"
	}
	s.cache = c
}

// MaxCacheKey bounds a cache key.
const MaxCacheKey = 512

func indexed(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }

// sourceDefaultBranch is the default branch a pipeline's source names, ""
// when it names none.
func sourceDefaultBranch(p *jobv1.PipelineDetail) string { return "" }

func cacheKey(field, k string) error {
	switch {
	case k == "":
		return invalid(field, "must not be empty")
	case len(k) > MaxCacheKey:
		return invalid(field, "at most %d bytes", MaxCacheKey)
	case !utf8.ValidString(k) || strings.ContainsAny(k, "\x00\n"):
		return invalid(field, "must be one line of text")
	}
	return nil
}

// cacheScope is where a job's cache lives: its pipeline, its branch (a run
// of no branch is of the default branch) and the default branch, and
// whether it may write.
type cacheScope struct {
	pipelineID    string
	branch        string
	defaultBranch string
	readOnly      bool
}

func (s *Service) cacheScope(ctx context.Context, j *store.Job) (cacheScope, error) {
	if j.RunID == "" || j.PipelineID == "" || len(j.Cache) == 0 {
		return cacheScope{}, grpcstatus.Errorf(codes.FailedPrecondition, "job %s has no cache", j.ID)
	}
	r, err := s.store.GetRun(ctx, j.RunID)
	if err != nil {
		return cacheScope{}, storeError(err, "run")
	}
	def := s.cache.DefaultBranch
	if spec, err := lifecycle.DecodeSpec(r.Spec); err == nil {
		if b := sourceDefaultBranch(spec); b != "" {
			def = b
		}
	}
	sc := cacheScope{pipelineID: j.PipelineID, branch: r.Branch, defaultBranch: def, readOnly: r.UntrustedOrigin}
	if sc.branch == "" {
		sc.branch = def
	}
	return sc, nil
}

// cacheObjectKey is where an entry's bytes are kept.
func cacheObjectKey(e *store.CacheEntry) string { return "cache/" + e.PipelineID + "/" + e.ID }

func (s *Service) cacheEntryProto(ctx context.Context, e *store.CacheEntry, objs *objects.Store) *agentv1.CacheEntry {
	out := &agentv1.CacheEntry{Id: e.ID, Key: e.Key, Branch: e.Branch, SizeBytes: e.SizeBytes, Sha256: e.SHA256,
		CreatedAt: ts(e.CreatedAt), LastUsedAt: ts(e.LastUsedAt)}
	if objs != nil && s.storage.redirectDownloads && e.Parts == 0 && objs.CanPresign() {
		if get, err := objs.PresignGet(ctx, e.StorageKey, "cache.tar.zst", s.storage.urlTTL); err == nil {
			out.Download = presigned(get)
		} else {
			s.log.Warn("presign a cache download; it goes through the server", "entry", e.ID, "err", err)
		}
	}
	return out
}

// LookupCache implements AgentService.LookupCache.
func (a *AgentServer) LookupCache(ctx context.Context, req *agentv1.LookupCacheRequest) (*agentv1.LookupCacheResponse, error) {
	s := a.s
	j, err := s.runningJob(ctx, req.GetJobId(), req.GetAttempt())
	if err != nil {
		return nil, err
	}
	if err := cacheKey("key", req.GetKey()); err != nil {
		return nil, err
	}
	if len(req.GetRestoreKeys()) > pipeline.MaxRestoreKeys {
		return nil, invalid("restore_keys", "at most %d", pipeline.MaxRestoreKeys)
	}
	for i, k := range req.GetRestoreKeys() {
		if err := cacheKey(indexed("restore_keys", i), k); err != nil {
			return nil, err
		}
	}
	sc, err := s.cacheScope(ctx, j)
	if err != nil {
		return nil, err
	}
	objs, err := s.keeping()
	if err != nil {
		return nil, err
	}
	e, exact, err := s.store.FindCache(ctx, store.CacheLookup{PipelineID: sc.pipelineID, Branches: []string{sc.branch, sc.defaultBranch},
		Key: req.GetKey(), Prefixes: req.GetRestoreKeys()}, s.now())
	if err != nil {
		return nil, storeError(err, "cache")
	}
	if e == nil {
		return &agentv1.LookupCacheResponse{}, nil
	}
	return &agentv1.LookupCacheResponse{Entry: s.cacheEntryProto(ctx, e, objs), Exact: exact && e.Branch == sc.branch}, nil
}

// DownloadCache implements AgentService.DownloadCache: an entry of the
// job's scope, streamed as stored and checked against its sha256.
func (a *AgentServer) DownloadCache(req *agentv1.DownloadCacheRequest, stream grpc.ServerStreamingServer[agentv1.DownloadCacheResponse]) error {
	s, ctx := a.s, stream.Context()
	j, err := s.runningJob(ctx, req.GetJobId(), req.GetAttempt())
	if err != nil {
		return err
	}
	sc, err := s.cacheScope(ctx, j)
	if err != nil {
		return err
	}
	e, err := s.store.GetCacheEntry(ctx, req.GetEntryId())
	if err != nil {
		return storeError(err, "cache entry "+req.GetEntryId())
	}
	if e.PipelineID != sc.pipelineID || e.Branch != sc.branch && e.Branch != sc.defaultBranch {
		return grpcstatus.Errorf(codes.PermissionDenied, "entry_id: entry %s is not of the job's pipeline and branch", e.ID)
	}
	objs, err := s.keeping()
	if err != nil {
		return err
	}
	err = objs.Read(ctx, e.StorageKey, e.Parts, e.SizeBytes, e.SHA256, func(data []byte) error {
		return inChunks(data, func(piece []byte) error { return stream.Send(&agentv1.DownloadCacheResponse{Data: piece}) })
	})
	if err != nil {
		if _, ok := grpcstatus.FromError(err); ok {
			return err
		}
		return storageError(err, "read cache entry "+e.ID)
	}
	return nil
}

// checkCacheSave checks a save's header: the job runs, may write, and the
// entry is within the bound.
func (s *Service) checkCacheSave(ctx context.Context, h *agentv1.CacheHeader) (*store.Job, cacheScope, error) {
	if h == nil {
		return nil, cacheScope{}, invalid("header", "is required")
	}
	j, err := s.runningJob(ctx, h.GetJobId(), h.GetAttempt())
	if err != nil {
		return nil, cacheScope{}, err
	}
	if err := cacheKey("header.key", h.GetKey()); err != nil {
		return nil, cacheScope{}, err
	}
	if h.GetSizeBytes() <= 0 {
		return nil, cacheScope{}, invalid("header.size_bytes", "must be positive")
	}
	if h.GetSizeBytes() > s.cache.EntryMaxBytes {
		return nil, cacheScope{}, invalid("header.size_bytes", "%d bytes exceeds this server's cache entry limit of %d (cache_entry_max_bytes)", h.GetSizeBytes(), s.cache.EntryMaxBytes)
	}
	if b, err := hex.DecodeString(h.GetSha256()); err != nil || len(b) != sha256.Size {
		return nil, cacheScope{}, invalid("header.sha256", "want 64 hex digits, got %q", h.GetSha256())
	}
	h.Sha256 = strings.ToLower(h.GetSha256())
	sc, err := s.cacheScope(ctx, j)
	if err != nil {
		return nil, cacheScope{}, err
	}
	if sc.readOnly {
		return nil, cacheScope{}, grpcstatus.Errorf(codes.PermissionDenied, "job %s is of a run of untrusted origin: it writes no shared cache", j.ID)
	}
	return j, sc, nil
}

// recordCache records a stored entry and removes what it replaced or
// evicted.
func (s *Service) recordCache(ctx context.Context, e *store.CacheEntry, objs *objects.Store) error {
	gone, err := s.store.SaveCacheEntry(ctx, e, s.cache.MaxBytes)
	if err != nil {
		return storeError(err, "cache entry")
	}
	for _, g := range gone {
		if err := objs.Remove(context.WithoutCancel(ctx), g.StorageKey, g.Parts); err != nil {
			s.log.Warn("remove an evicted cache entry", "entry", g.ID, "err", err)
		}
		if g.ID != e.ID {
			s.log.Info("cache entry evicted", "pipeline", g.PipelineID, "branch", g.Branch, "key", g.Key, "size_bytes", g.SizeBytes)
		}
	}
	s.log.Info("cache entry saved", "pipeline", e.PipelineID, "branch", e.Branch, "key", e.Key, "size_bytes", e.SizeBytes, "sha256", e.SHA256)
	return nil
}

// BeginCacheSave implements AgentService.BeginCacheSave.
func (a *AgentServer) BeginCacheSave(ctx context.Context, req *agentv1.BeginCacheSaveRequest) (*agentv1.BeginCacheSaveResponse, error) {
	s, h := a.s, req.GetHeader()
	j, _, err := s.checkCacheSave(ctx, h)
	if err != nil {
		return nil, err
	}
	objs, err := s.keeping()
	if err != nil {
		return nil, err
	}
	if !s.storage.directUploads || !objs.CanPresignPut(h.GetSizeBytes()) {
		return &agentv1.BeginCacheSaveResponse{Transfer: agentv1.ArtifactTransfer_ARTIFACT_TRANSFER_SERVER}, nil
	}
	e := &store.CacheEntry{ID: newID(), PipelineID: j.PipelineID}
	put, err := objs.PresignPut(ctx, cacheObjectKey(e), h.GetSizeBytes(), h.GetSha256(),
		objects.Meta{ContentType: "application/zstd", Metadata: map[string]string{"job_id": j.ID, "cache_key": h.GetKey()}}, s.storage.urlTTL)
	if err != nil {
		return nil, storageError(err, "presign cache entry")
	}
	return &agentv1.BeginCacheSaveResponse{Transfer: agentv1.ArtifactTransfer_ARTIFACT_TRANSFER_DIRECT, Upload: presigned(put), EntryId: e.ID}, nil
}

// FinishCacheSave implements AgentService.FinishCacheSave: the entry is
// recorded only when the store holds an object of the declared size and
// sha256.
func (a *AgentServer) FinishCacheSave(ctx context.Context, req *agentv1.FinishCacheSaveRequest) (*agentv1.FinishCacheSaveResponse, error) {
	s, h := a.s, req.GetHeader()
	j, sc, err := s.checkCacheSave(ctx, h)
	if err != nil {
		return nil, err
	}
	if err := requireID("entry_id", req.GetEntryId()); err != nil {
		return nil, err
	}
	objs, err := s.keeping()
	if err != nil {
		return nil, err
	}
	now := s.now()
	e := &store.CacheEntry{ID: req.GetEntryId(), PipelineID: j.PipelineID, Branch: sc.branch, Key: h.GetKey(), JobID: j.ID, CreatedAt: now, LastUsedAt: now}
	e.StorageKey = cacheObjectKey(e)
	obj, err := objs.Stat(ctx, e.StorageKey)
	if errors.Is(err, objects.ErrNotFound) {
		return nil, grpcstatus.Errorf(codes.FailedPrecondition, "entry_id: the store holds no such object: the upload did not reach it")
	}
	if err != nil {
		return nil, storageError(err, "check cache entry")
	}
	if obj.Size != h.GetSizeBytes() || obj.SHA256 != h.GetSha256() {
		if rerr := objs.Delete(context.WithoutCancel(ctx), e.StorageKey); rerr != nil {
			s.log.Warn("remove a stored object that differs from its cache header", "entry", e.ID, "err", rerr)
		}
		return nil, invalid("header.sha256", "declared %d bytes with sha256 %s, the store holds %d bytes with sha256 %s",
			h.GetSizeBytes(), h.GetSha256(), obj.Size, obj.SHA256)
	}
	e.SizeBytes, e.SHA256 = obj.Size, obj.SHA256
	if err := s.recordCache(ctx, e, objs); err != nil {
		return nil, err
	}
	return &agentv1.FinishCacheSaveResponse{Entry: s.cacheEntryProto(ctx, e, nil)}, nil
}

// SaveCache implements AgentService.SaveCache: the archive through the
// server, its size and sha256 checked before the entry is recorded.
func (a *AgentServer) SaveCache(stream grpc.ClientStreamingServer[agentv1.SaveCacheRequest, agentv1.SaveCacheResponse]) error {
	s, ctx := a.s, stream.Context()
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return invalid("header", "the first message must carry the header")
	}
	if err != nil {
		return err
	}
	h := first.GetHeader()
	j, sc, err := s.checkCacheSave(ctx, h)
	if err != nil {
		return err
	}
	objs, err := s.keeping()
	if err != nil {
		return err
	}
	now := s.now()
	e := &store.CacheEntry{ID: newID(), PipelineID: j.PipelineID, Branch: sc.branch, Key: h.GetKey(), JobID: j.ID, CreatedAt: now, LastUsedAt: now,
		SizeBytes: h.GetSizeBytes(), SHA256: h.GetSha256()}
	e.StorageKey = cacheObjectKey(e)
	w := objs.NewWriter(ctx, e.StorageKey, objects.WriteOptions{SHA256: e.SHA256, Size: e.SizeBytes,
		Meta: objects.Meta{ContentType: "application/zstd", Metadata: map[string]string{"job_id": j.ID, "cache_key": e.Key}}})
	refuse := func(err error) error {
		if aerr := w.Abort(context.WithoutCancel(ctx)); aerr != nil {
			s.log.Warn("remove what a refused cache save stored", "entry", e.ID, "err", aerr)
		}
		return err
	}
	sum := sha256.New()
	var n int64
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return refuse(err)
		}
		data := req.GetData()
		if n += int64(len(data)); n > e.SizeBytes {
			return refuse(invalid("data", "more bytes than header.size_bytes (%d)", e.SizeBytes))
		}
		sum.Write(data)
		if _, err := w.Write(data); err != nil {
			return refuse(storageError(err, "store cache entry"))
		}
	}
	if n != e.SizeBytes {
		return refuse(invalid("header.size_bytes", "declared %d, received %d bytes", e.SizeBytes, n))
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != e.SHA256 {
		return refuse(invalid("header.sha256", "declared %s, the bytes received hash to %s", e.SHA256, got))
	}
	parts, err := w.Close()
	if err != nil {
		return refuse(storageError(err, "store cache entry"))
	}
	e.Parts = parts
	if err := s.recordCache(ctx, e, objs); err != nil {
		return err
	}
	return stream.SendAndClose(&agentv1.SaveCacheResponse{Entry: s.cacheEntryProto(ctx, e, nil)})
}
