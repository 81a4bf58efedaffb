package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"path"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/core/logpack"
	"github.com/go-arcade/arcade/server/artifacts"
	"github.com/go-arcade/arcade/server/auth"
	"github.com/go-arcade/arcade/server/logarchive"
	"github.com/go-arcade/arcade/server/store"
)

// downloadChunk is the most bytes one DownloadArtifact message carries.
const downloadChunk = 256 << 10

// storage is where artifacts and archived logs go.
type storage struct {
	objects *artifacts.Objects
	archive *logarchive.Archive
	// maxBytes bounds one artifact; expireIn is the expiry of artifacts
	// whose job sets none (0: they do not expire).
	maxBytes int64
	expireIn time.Duration
}

// StorageConfig says where and how artifacts are kept.
type StorageConfig struct {
	Objects *artifacts.Objects
	Archive *logarchive.Archive
	// MaxBytes bounds one artifact (0: 1 GiB).
	MaxBytes int64
	// ExpireIn is the expiry of artifacts whose job sets none; 0 keeps them.
	ExpireIn time.Duration
}

// UseStorage sets where artifacts and archived logs are kept; call it before
// serving.
func (s *Service) UseStorage(c StorageConfig) {
	if c.MaxBytes <= 0 {
		c.MaxBytes = 1 << 30
	}
	s.storage = storage{objects: c.Objects, archive: c.Archive, maxBytes: c.MaxBytes, expireIn: c.ExpireIn}
}

// validArtifactPath checks a path as the agent reports it: relative,
// slash-separated, clean, inside the workspace.
func validArtifactPath(field, p string) error {
	switch {
	case p == "":
		return invalid(field, "must not be empty")
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
	if err := requireID("header.job_id", h.GetJobId()); err != nil {
		return err
	}
	if h.GetAttempt() < 1 {
		return invalid("header.attempt", "must be 1 or more, got %d", h.GetAttempt())
	}
	if err := validArtifactPath("header.path", h.GetPath()); err != nil {
		return err
	}
	if h.GetSizeBytes() < 0 {
		return invalid("header.size_bytes", "must not be negative")
	}
	if h.GetSizeBytes() > s.storage.maxBytes {
		return invalid("header.size_bytes", "%d bytes exceeds this server's artifact limit of %d", h.GetSizeBytes(), s.storage.maxBytes)
	}
	want := strings.ToLower(h.GetSha256())
	if b, err := hex.DecodeString(want); err != nil || len(b) != sha256.Size {
		return invalid("header.sha256", "want 64 hex digits, got %q", h.GetSha256())
	}
	id := auth.FromContext(ctx)
	j, err := s.store.GetJob(ctx, h.GetJobId())
	if err != nil {
		return storeError(err, "job "+h.GetJobId())
	}
	if id.Kind != auth.AgentCaller || j.AgentID != id.AgentID {
		return grpcstatus.Errorf(codes.PermissionDenied, "job %s attempt %d is not run by this agent", j.ID, h.GetAttempt())
	}
	if j.Attempt != h.GetAttempt() || status(j) != jobstate.Running {
		return grpcstatus.Errorf(codes.FailedPrecondition, "job %s attempt %d is not running (the job is at attempt %d, %s)", j.ID, h.GetAttempt(), j.Attempt, j.Status)
	}
	objects := s.storage.objects
	if err := objects.Available(); err != nil {
		return grpcstatus.Errorf(codes.FailedPrecondition, "artifacts: %v (set artifact_store to a loaded storage plugin)", err)
	}
	now := s.now()
	key := artifacts.Key(j.ID, j.Attempt, h.GetPath())
	expires := s.artifactExpiry(j, now)
	w := objects.NewPartWriter(ctx, key, expires)
	refuse := func(err error) error {
		if aerr := w.Abort(context.WithoutCancel(ctx)); aerr != nil {
			s.log.Warn("remove parts of a refused artifact", "job", j.ID, "path", h.GetPath(), "err", aerr)
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
		CreatedAt: now, ExpiresAt: expires, Stored: true, StorageKey: key, Parts: int32(parts)}
	if err := s.store.SaveArtifact(ctx, row); err != nil {
		return refuse(storeError(err, "artifact "+h.GetPath()))
	}
	s.log.Info("artifact stored", "job", j.ID, "attempt", j.Attempt, "path", row.Path, "size_bytes", n,
		"sha256", want, "parts", parts, "expires_at", expires)
	return stream.SendAndClose(&agentv1.UploadArtifactResponse{Artifact: artifact(*row)})
}

// storageError maps a storage plugin failure to a gRPC error.
func storageError(err error, what string) error {
	switch {
	case errors.Is(err, artifacts.ErrNoStore):
		return grpcstatus.Errorf(codes.FailedPrecondition, "%s: %v", what, err)
	case errors.Is(err, artifacts.ErrCorrupt):
		return grpcstatus.Errorf(codes.DataLoss, "%s: %v", what, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return grpcstatus.FromContextError(err).Err()
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

// DownloadArtifact implements JobService.DownloadArtifact: the artifact's
// description, then its bytes read back through the storage plugin.
func (js *JobServer) DownloadArtifact(req *jobv1.DownloadArtifactRequest, stream grpc.ServerStreamingServer[jobv1.DownloadArtifactResponse]) error {
	s, ctx := js.s, stream.Context()
	if err := validArtifactPath("path", req.GetPath()); err != nil {
		return err
	}
	if req.GetAttempt() < 0 {
		return invalid("attempt", "must not be negative")
	}
	j, err := js.get(ctx, req.GetJobId())
	if err != nil {
		return err
	}
	a, err := s.store.GetArtifact(ctx, j.ID, req.GetAttempt(), req.GetPath())
	if errors.Is(err, store.ErrNotFound) {
		return grpcstatus.Errorf(codes.NotFound, "path: job %s has no artifact %q", j.ID, req.GetPath())
	}
	if err != nil {
		return storeError(err, "artifact "+req.GetPath())
	}
	if !a.ExpiresAt.IsZero() && !a.ExpiresAt.After(s.now()) {
		return grpcstatus.Errorf(codes.NotFound, "path: artifact %q of job %s expired at %s", a.Path, j.ID, a.ExpiresAt.Format(time.RFC3339))
	}
	if !a.Stored {
		return grpcstatus.Errorf(codes.NotFound, "path: artifact %q of job %s was not uploaded (the agent reported it but the server does not hold its bytes)", a.Path, j.ID)
	}
	if err := stream.Send(&jobv1.DownloadArtifactResponse{Artifact: artifact(*a)}); err != nil {
		return err
	}
	err = s.storage.objects.EachPart(ctx, a.StorageKey, int(a.Parts), func(data []byte) error {
		for len(data) > 0 {
			n := min(len(data), downloadChunk)
			if err := stream.Send(&jobv1.DownloadArtifactResponse{Data: data[:n]}); err != nil {
				return err
			}
			data = data[n:]
		}
		return nil
	})
	if err != nil {
		if _, ok := grpcstatus.FromError(err); ok {
			return err
		}
		// Swept meanwhile?
		if _, gerr := s.store.GetArtifact(ctx, j.ID, a.Attempt, a.Path); errors.Is(gerr, store.ErrNotFound) {
			return grpcstatus.Errorf(codes.NotFound, "path: artifact %q of job %s expired", a.Path, j.ID)
		}
		return storageError(err, "read artifact "+a.Path)
	}
	return nil
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
			if err := s.storage.objects.DeleteParts(ctx, a.StorageKey, int(a.Parts)); err != nil {
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
