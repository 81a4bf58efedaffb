package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"path"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/core/logpack"
	"github.com/go-arcade/arcade/server/artifacts"
	"github.com/go-arcade/arcade/server/auth"
	"github.com/go-arcade/arcade/server/logarchive"
	"github.com/go-arcade/arcade/server/objects"
	"github.com/go-arcade/arcade/server/store"
)

// downloadChunk is the most bytes one DownloadArtifact message carries.
const downloadChunk = 256 << 10

// inChunks hands data to send in pieces of at most downloadChunk bytes, one
// stream message each.
func inChunks(data []byte, send func(piece []byte) error) error {
	for len(data) > 0 {
		n := min(len(data), downloadChunk)
		if err := send(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// DefaultURLTTL is how long a presigned URL works when the configuration
// says nothing.
const DefaultURLTTL = 10 * time.Minute

// storage is where artifacts and archived logs go.
type storage struct {
	objects *objects.Store
	archive *logarchive.Archive
	// maxBytes bounds one artifact; expireIn is the expiry of artifacts
	// whose job sets none (0: they do not expire).
	maxBytes int64
	expireIn time.Duration
	// directUploads, redirectDownloads: presigned transfers, where the
	// store makes them; urlTTL is how long such a URL works.
	directUploads     bool
	redirectDownloads bool
	urlTTL            time.Duration
}

// StorageConfig says where and how artifacts are kept.
type StorageConfig struct {
	// Objects keep the bytes; nil: artifacts are described, not stored.
	Objects *objects.Store
	Archive *logarchive.Archive
	// MaxBytes bounds one artifact (0: 1 GiB).
	MaxBytes int64
	// ExpireIn is the expiry of artifacts whose job sets none; 0 keeps them.
	ExpireIn time.Duration
	// DirectUploads lets agents put artifacts straight into the store
	// through presigned URLs, when the store makes them; otherwise the bytes
	// go through the server (UploadArtifact).
	DirectUploads bool
	// RedirectDownloads makes GetArtifactURL hand out presigned GETs, when
	// the store makes them (the HTTP face then redirects); otherwise
	// downloads are streamed through the server.
	RedirectDownloads bool
	// URLTTL is how long a presigned URL works (0: DefaultURLTTL).
	URLTTL time.Duration
}

// UseStorage sets where artifacts and archived logs are kept; call it before
// serving.
func (s *Service) UseStorage(c StorageConfig) {
	if c.MaxBytes <= 0 {
		c.MaxBytes = 1 << 30
	}
	if c.URLTTL <= 0 {
		c.URLTTL = DefaultURLTTL
	}
	s.storage = storage{objects: c.Objects, archive: c.Archive, maxBytes: c.MaxBytes, expireIn: c.ExpireIn,
		directUploads: c.DirectUploads, redirectDownloads: c.RedirectDownloads, urlTTL: c.URLTTL}
}

// validArtifactPath checks a path as the agent reports it: relative,
// slash-separated, clean, inside the workspace.
func validArtifactPath(field, p string) error {
	switch {
	case p == "":
		return invalid(field, "must not be empty")
	case len(p) > 1024:
		return invalid(field, "%d bytes is longer than the limit of 1024", len(p))
	case path.IsAbs(p) || strings.ContainsAny(p, "\\\x00"):
		return invalid(field, "must be a relative slash-separated path, got %q", p)
	case path.Clean(p) != p || p == "." || p == ".." || strings.HasPrefix(p, "../"):
		return invalid(field, "must be a clean path inside the workspace, got %q", p)
	}
	return nil
}

// artifactExpiry is when an artifact of j stored at now expires: the job's
// expire_in when it sets one (zero: never), else the server's default.
func (s *Service) artifactExpiry(j *store.Job, now time.Time) time.Time {
	d := s.storage.expireIn
	if cfg := artifactConfig(j.Artifacts); cfg != nil && cfg.GetExpireIn() != nil {
		d = cfg.GetExpireIn().AsDuration()
	}
	if d <= 0 {
		return time.Time{}
	}
	return now.Add(d)
}

// contentType is an artifact's content type, from its name.
func contentType(p string) string {
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// checkUpload checks an artifact header as the agent running the attempt
// sends it and returns the job.
func (s *Service) checkUpload(ctx context.Context, h *agentv1.ArtifactHeader) (*store.Job, error) {
	if h == nil {
		return nil, invalid("header", "is required")
	}
	if err := requireID("header.job_id", h.GetJobId()); err != nil {
		return nil, err
	}
	if h.GetAttempt() < 1 {
		return nil, invalid("header.attempt", "must be 1 or more, got %d", h.GetAttempt())
	}
	if err := validArtifactPath("header.path", h.GetPath()); err != nil {
		return nil, err
	}
	if h.GetSizeBytes() < 0 {
		return nil, invalid("header.size_bytes", "must not be negative")
	}
	if h.GetSizeBytes() > s.storage.maxBytes {
		return nil, invalid("header.size_bytes", "%d bytes exceeds this server's artifact limit of %d", h.GetSizeBytes(), s.storage.maxBytes)
	}
	if b, err := hex.DecodeString(h.GetSha256()); err != nil || len(b) != sha256.Size {
		return nil, invalid("header.sha256", "want 64 hex digits, got %q", h.GetSha256())
	}
	h.Sha256 = strings.ToLower(h.GetSha256())
	id := auth.FromContext(ctx)
	j, err := s.store.GetJob(ctx, h.GetJobId())
	if err != nil {
		return nil, storeError(err, "job "+h.GetJobId())
	}
	if id.Kind != auth.AgentCaller || j.AgentID != id.AgentID {
		return nil, grpcstatus.Errorf(codes.PermissionDenied, "job %s attempt %d is not run by this agent", j.ID, h.GetAttempt())
	}
	if j.Attempt != h.GetAttempt() || status(j) != jobstate.Running {
		return nil, grpcstatus.Errorf(codes.FailedPrecondition, "job %s attempt %d is not running (the job is at attempt %d, %s)", j.ID, h.GetAttempt(), j.Attempt, j.Status)
	}
	return j, nil
}

// keeping returns the object store, or why artifacts cannot be stored now.
func (s *Service) keeping() (*objects.Store, error) {
	objs := s.storage.objects
	if objs == nil {
		return nil, grpcstatus.Error(codes.FailedPrecondition, "this server keeps no artifacts (artifact_store is not set)")
	}
	if err := objs.Available(); err != nil {
		return nil, storageError(err, "artifact store")
	}
	return objs, nil
}

// BeginArtifactUpload implements AgentService.BeginArtifactUpload: the
// upload is checked as UploadArtifact checks it, and the agent is told how
// the bytes go. A presigned PUT carries the declared sha256: the store
// refuses other bytes.
func (a *AgentServer) BeginArtifactUpload(ctx context.Context, req *agentv1.BeginArtifactUploadRequest) (*agentv1.BeginArtifactUploadResponse, error) {
	s, h := a.s, req.GetHeader()
	j, err := s.checkUpload(ctx, h)
	if err != nil {
		return nil, err
	}
	if s.storage.objects == nil {
		return &agentv1.BeginArtifactUploadResponse{Transfer: agentv1.ArtifactTransfer_ARTIFACT_TRANSFER_NOT_KEPT}, nil
	}
	objs, err := s.keeping()
	if err != nil {
		return nil, err
	}
	if !s.storage.directUploads || !objs.CanPresignPut(h.GetSizeBytes()) {
		return &agentv1.BeginArtifactUploadResponse{Transfer: agentv1.ArtifactTransfer_ARTIFACT_TRANSFER_SERVER}, nil
	}
	meta := objects.Meta{ContentType: contentType(h.GetPath()), Expires: s.artifactExpiry(j, s.now()),
		Metadata: map[string]string{"job_id": j.ID, "attempt": strconv.Itoa(int(j.Attempt))}}
	put, err := objs.PresignPut(ctx, artifacts.Key(j.ID, j.Attempt, h.GetPath()), h.GetSizeBytes(), h.GetSha256(), meta, s.storage.urlTTL)
	if err != nil {
		return nil, storageError(err, "presign artifact "+h.GetPath())
	}
	return &agentv1.BeginArtifactUploadResponse{Transfer: agentv1.ArtifactTransfer_ARTIFACT_TRANSFER_DIRECT, Upload: presigned(put)}, nil
}

func presigned(p *objects.Presigned) *agentv1.PresignedRequest {
	return &agentv1.PresignedRequest{Method: p.Method, Url: p.URL, Headers: p.Header, ExpiresAt: timestamppb.New(p.Expires)}
}

// FinishArtifactUpload implements AgentService.FinishArtifactUpload: the
// artifact is recorded only when the store holds an object of the declared
// size and sha256; an object that differs is removed.
func (a *AgentServer) FinishArtifactUpload(ctx context.Context, req *agentv1.FinishArtifactUploadRequest) (*agentv1.FinishArtifactUploadResponse, error) {
	s, h := a.s, req.GetHeader()
	j, err := s.checkUpload(ctx, h)
	if err != nil {
		return nil, err
	}
	objs, err := s.keeping()
	if err != nil {
		return nil, err
	}
	key := artifacts.Key(j.ID, j.Attempt, h.GetPath())
	obj, err := objs.Stat(ctx, key)
	if errors.Is(err, objects.ErrNotFound) {
		return nil, grpcstatus.Errorf(codes.FailedPrecondition, "artifact %s: the store holds no such object: the upload did not reach it", h.GetPath())
	}
	if err != nil {
		return nil, storageError(err, "check artifact "+h.GetPath())
	}
	if obj.Size != h.GetSizeBytes() || obj.SHA256 != h.GetSha256() {
		if rerr := objs.Delete(context.WithoutCancel(ctx), key); rerr != nil {
			s.log.Warn("remove a stored object that differs from its artifact header", "job", j.ID, "path", h.GetPath(), "err", rerr)
		}
		return nil, invalid("header.sha256", "declared %d bytes with sha256 %s, the store holds %d bytes with sha256 %s",
			h.GetSizeBytes(), h.GetSha256(), obj.Size, obj.SHA256)
	}
	now := s.now()
	expires := obj.Expires
	if expires.IsZero() {
		expires = s.artifactExpiry(j, now)
	}
	row := &store.Artifact{JobID: j.ID, Attempt: j.Attempt, Path: h.GetPath(), SizeBytes: obj.Size, SHA256: obj.SHA256,
		CreatedAt: now, ExpiresAt: expires, Stored: true, StorageKey: key}
	if err := s.store.SaveArtifact(ctx, row); err != nil {
		return nil, storeError(err, "artifact "+h.GetPath())
	}
	s.log.Info("artifact stored", "job", j.ID, "attempt", j.Attempt, "path", row.Path, "size_bytes", row.SizeBytes,
		"sha256", row.SHA256, "transfer", "direct", "expires_at", expires)
	return &agentv1.FinishArtifactUploadResponse{Artifact: artifact(*row)}, nil
}

// UploadArtifact implements AgentService.UploadArtifact: the agent running
// an attempt streams one of its files; size and sha256 are checked before
// the artifact is recorded, and a refused upload leaves nothing stored.
func (a *AgentServer) UploadArtifact(stream grpc.ClientStreamingServer[agentv1.UploadArtifactRequest, agentv1.UploadArtifactResponse]) error {
	s, ctx := a.s, stream.Context()
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return invalid("header", "the first message must carry the header")
	}
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil {
		return invalid("header", "the first message must carry the header")
	}
	j, err := s.checkUpload(ctx, h)
	if err != nil {
		return err
	}
	objs, err := s.keeping()
	if err != nil {
		return err
	}
	want := h.GetSha256()
	now := s.now()
	key := artifacts.Key(j.ID, j.Attempt, h.GetPath())
	expires := s.artifactExpiry(j, now)
	w := objs.NewWriter(ctx, key, objects.WriteOptions{SHA256: want, Size: h.GetSizeBytes(),
		Meta: objects.Meta{ContentType: contentType(h.GetPath()), Expires: expires,
			Metadata: map[string]string{"job_id": j.ID, "attempt": strconv.Itoa(int(j.Attempt))}}})
	refuse := func(err error) error {
		if aerr := w.Abort(context.WithoutCancel(ctx)); aerr != nil {
			s.log.Warn("remove what a refused artifact stored", "job", j.ID, "path", h.GetPath(), "err", aerr)
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
		if req.GetHeader() != nil {
			return refuse(invalid("header", "sent twice"))
		}
		data := req.GetData()
		n += int64(len(data))
		if n > h.GetSizeBytes() {
			return refuse(invalid("data", "more bytes than header.size_bytes (%d)", h.GetSizeBytes()))
		}
		sum.Write(data)
		if _, err := w.Write(data); err != nil {
			return refuse(storageError(err, "store artifact "+h.GetPath()))
		}
	}
	if n != h.GetSizeBytes() {
		return refuse(invalid("header.size_bytes", "declared %d, received %d bytes", h.GetSizeBytes(), n))
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != want {
		return refuse(invalid("header.sha256", "declared %s, the bytes received hash to %s", want, got))
	}
	parts, err := w.Close()
	if err != nil {
		return refuse(storageError(err, "store artifact "+h.GetPath()))
	}
	row := &store.Artifact{JobID: j.ID, Attempt: j.Attempt, Path: h.GetPath(), SizeBytes: n, SHA256: want,
		CreatedAt: now, ExpiresAt: expires, Stored: true, StorageKey: key, Parts: parts}
	if err := s.store.SaveArtifact(ctx, row); err != nil {
		return refuse(storeError(err, "artifact "+h.GetPath()))
	}
	s.log.Info("artifact stored", "job", j.ID, "attempt", j.Attempt, "path", row.Path, "size_bytes", n,
		"sha256", want, "transfer", "server", "parts", parts, "expires_at", expires)
	return stream.SendAndClose(&agentv1.UploadArtifactResponse{Artifact: artifact(*row)})
}

// storageError maps a storage failure to a gRPC error: a store that is
// down or not loaded is Unavailable (worth trying again), one that refuses
// is FailedPrecondition.
func storageError(err error, what string) error {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return grpcstatus.FromContextError(err).Err()
	case errors.Is(err, objects.ErrNoStore), errors.Is(err, objects.ErrUnavailable):
		return grpcstatus.Errorf(codes.Unavailable, "%s: %v", what, err)
	case errors.Is(err, objects.ErrCorrupt):
		return grpcstatus.Errorf(codes.DataLoss, "%s: %v", what, err)
	case errors.Is(err, objects.ErrNotFound):
		return grpcstatus.Errorf(codes.NotFound, "%s: %v", what, err)
	case errors.Is(err, objects.ErrDenied), errors.Is(err, objects.ErrMisconfigured), errors.Is(err, objects.ErrCannotPresign):
		return grpcstatus.Errorf(codes.FailedPrecondition, "%s: %v", what, err)
	case errors.Is(err, objects.ErrInvalid):
		return grpcstatus.Errorf(codes.InvalidArgument, "%s: %v", what, err)
	}
	return grpcstatus.Errorf(codes.Internal, "%s: %v", what, err)
}

// ListJobArtifacts implements JobService.ListJobArtifacts: the artifacts of
// the job's current attempt.
func (js *JobServer) ListJobArtifacts(ctx context.Context, req *jobv1.ListJobArtifactsRequest) (*jobv1.ListJobArtifactsResponse, error) {
	j, err := js.get(ctx, req.GetJobId())
	if err != nil {
		return nil, err
	}
	p, err := page(req.GetPageSize(), req.GetPageToken(), req.GetOrderBy(), store.ArtifactColumns, store.Order{Column: "path"})
	if err != nil {
		return nil, err
	}
	arts, total, err := js.s.store.ListArtifacts(ctx, j.ID, j.Attempt, p)
	if err != nil {
		return nil, storeError(err, "artifacts")
	}
	resp := &jobv1.ListJobArtifactsResponse{}
	page := newPageBytes()
	for _, a := range arts {
		pa := artifact(a)
		if !page.take(pa) {
			break
		}
		resp.Artifacts = append(resp.Artifacts, pa)
	}
	resp.NextPageToken = nextToken(p, len(resp.Artifacts), total)
	return resp, nil
}

// downloadable returns the artifact a download asks for, or why it cannot
// be had.
func (js *JobServer) downloadable(ctx context.Context, jobID string, attempt int32, p string) (*store.Artifact, error) {
	s := js.s
	if err := validArtifactPath("path", p); err != nil {
		return nil, err
	}
	if attempt < 0 {
		return nil, invalid("attempt", "must not be negative")
	}
	j, err := js.get(ctx, jobID)
	if err != nil {
		return nil, err
	}
	a, err := s.store.GetArtifact(ctx, j.ID, attempt, p)
	if errors.Is(err, store.ErrNotFound) {
		return nil, grpcstatus.Errorf(codes.NotFound, "path: job %s has no artifact %q", j.ID, p)
	}
	if err != nil {
		return nil, storeError(err, "artifact "+p)
	}
	if !a.ExpiresAt.IsZero() && !a.ExpiresAt.After(s.now()) {
		return nil, grpcstatus.Errorf(codes.NotFound, "path: artifact %q of job %s expired at %s", a.Path, j.ID, a.ExpiresAt.Format(time.RFC3339))
	}
	if !a.Stored {
		return nil, grpcstatus.Errorf(codes.NotFound, "path: artifact %q of job %s was not uploaded (the agent reported it but the server does not hold its bytes)", a.Path, j.ID)
	}
	return a, nil
}

// DownloadArtifact implements JobService.DownloadArtifact: the artifact's
// description, then its bytes read back through the storage plugin.
func (js *JobServer) DownloadArtifact(req *jobv1.DownloadArtifactRequest, stream grpc.ServerStreamingServer[jobv1.DownloadArtifactResponse]) error {
	s, ctx := js.s, stream.Context()
	a, err := js.downloadable(ctx, req.GetJobId(), req.GetAttempt(), req.GetPath())
	if err != nil {
		return err
	}
	if err := stream.Send(&jobv1.DownloadArtifactResponse{Artifact: artifact(*a)}); err != nil {
		return err
	}
	err = s.storage.objects.Read(ctx, a.StorageKey, a.Parts, a.SizeBytes, a.SHA256, func(data []byte) error {
		return inChunks(data, func(piece []byte) error { return stream.Send(&jobv1.DownloadArtifactResponse{Data: piece}) })
	})
	if err != nil {
		if _, ok := grpcstatus.FromError(err); ok {
			return err
		}
		// Swept meanwhile?
		if _, gerr := s.store.GetArtifact(ctx, a.JobID, a.Attempt, a.Path); errors.Is(gerr, store.ErrNotFound) {
			return grpcstatus.Errorf(codes.NotFound, "path: artifact %q of job %s expired", a.Path, a.JobID)
		}
		return storageError(err, "read artifact "+a.Path)
	}
	return nil
}

// GetArtifactURL implements JobService.GetArtifactURL: a presigned GET of
// the artifact when this server hands them out and the store makes them;
// no URL otherwise (DownloadArtifact streams it).
func (js *JobServer) GetArtifactURL(ctx context.Context, req *jobv1.GetArtifactURLRequest) (*jobv1.GetArtifactURLResponse, error) {
	s := js.s
	a, err := js.downloadable(ctx, req.GetJobId(), req.GetAttempt(), req.GetPath())
	if err != nil {
		return nil, err
	}
	resp := &jobv1.GetArtifactURLResponse{Artifact: artifact(*a)}
	// An artifact kept in parts (a store without multipart) has no one URL.
	if !s.storage.redirectDownloads || a.Parts != 0 || !s.storage.objects.CanPresign() {
		return resp, nil
	}
	get, err := s.storage.objects.PresignGet(ctx, a.StorageKey, path.Base(a.Path), s.storage.urlTTL)
	if err != nil {
		return nil, storageError(err, "presign artifact "+a.Path)
	}
	resp.Url, resp.ExpiresAt = get.URL, timestamppb.New(get.Expires)
	return resp, nil
}

// readPacks returns an attempt's stored log packs from line from on, from
// the database or, once archived, from the storage plugin.
func (s *Service) readPacks(ctx context.Context, j *store.Job, attempt int32, from int64, limit int) ([]store.Pack, error) {
	if attempt <= j.LogArchivedAttempts {
		return s.archivedPacks(ctx, j.ID, attempt, from)
	}
	packs, err := s.store.ReadPacks(ctx, j.ID, attempt, from, limit)
	if err != nil {
		return nil, storeError(err, "log")
	}
	if len(packs) == 0 && (attempt < j.Attempt || jobstate.Terminal(status(j))) {
		// The log may have been archived since j was read.
		if cur, err := s.store.GetJob(ctx, j.ID); err == nil && attempt <= cur.LogArchivedAttempts {
			return s.archivedPacks(ctx, j.ID, attempt, from)
		}
	}
	return packs, nil
}

func (s *Service) archivedPacks(ctx context.Context, jobID string, attempt int32, from int64) ([]store.Pack, error) {
	if s.storage.archive == nil {
		return nil, grpcstatus.Errorf(codes.FailedPrecondition, "log of job %s attempt %d is archived, and this server has no artifact store to read it from", jobID, attempt)
	}
	p, err := s.storage.archive.Read(ctx, jobID, attempt)
	if err != nil {
		return nil, storageError(err, "archived log")
	}
	if p.Last < from {
		return nil, nil
	}
	return []store.Pack{p}, nil
}

// readLogs returns up to limit lines of an attempt from line from on.
func (s *Service) readLogs(ctx context.Context, j *store.Job, attempt int32, from int64, limit int) ([]store.LogLine, error) {
	packs, err := s.readPacks(ctx, j, attempt, from, limit)
	if err != nil {
		return nil, err
	}
	var out []store.LogLine
	for _, p := range packs {
		if out, err = logpack.Decode(out, p.Data, p.First, from); err != nil {
			return nil, grpcstatus.Errorf(codes.DataLoss, "log of job %s attempt %d, lines %d-%d: %v", j.ID, attempt, p.First, p.Last, err)
		}
		if len(out) >= limit {
			break
		}
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// jobObjects lists what a job keeps through the storage plugin, so that it
// can be removed with the job.
func (s *Service) jobObjects(ctx context.Context, jobID string) (store.StoredOf, error) {
	j, err := s.store.GetJob(ctx, jobID)
	if errors.Is(err, store.ErrNotFound) {
		return store.StoredOf{}, nil // DeleteJob says so
	}
	if err != nil {
		return store.StoredOf{}, storeError(err, "job "+jobID)
	}
	arts, err := s.store.JobArtifacts(ctx, jobID)
	if err != nil {
		return store.StoredOf{}, storeError(err, "artifacts of job "+jobID)
	}
	return store.StoredOf{JobID: jobID, Artifacts: arts, LogArchivedAttempts: j.LogArchivedAttempts}, nil
}

// deleteObjects removes a deleted job's objects; what fails is logged.
func (s *Service) deleteObjects(ctx context.Context, st store.StoredOf) {
	ctx = context.WithoutCancel(ctx)
	for _, a := range st.Artifacts {
		if a.Stored {
			if err := s.storage.objects.Remove(ctx, a.StorageKey, a.Parts); err != nil {
				s.log.Warn("remove artifact of a deleted job", "job", st.JobID, "path", a.Path, "err", err)
			}
		}
	}
	if st.LogArchivedAttempts > 0 && s.storage.archive != nil {
		if err := s.storage.archive.Delete(ctx, st.JobID, st.LogArchivedAttempts); err != nil {
			s.log.Warn("remove archived log of a deleted job", "job", st.JobID, "err", err)
		}
	}
}
