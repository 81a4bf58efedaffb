package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/go-arcade/arcade/agent/executor"
	"github.com/go-arcade/arcade/agent/transfer"
	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	"github.com/go-arcade/arcade/internal/confine"
)

const (
	// uploadChunk is the most bytes one UploadArtifact message carries.
	uploadChunk = 256 << 10
)

var (
	transferOnce   sync.Once
	transferClient *http.Client
)

func httpClient() *http.Client {
	transferOnce.Do(func() { transferClient = transfer.Client() })
	return transferClient
}

// errNotKept: the server keeps no artifact bytes (no artifact store); the
// artifact is reported described only.
var errNotKept = errors.New("this server keeps no artifact bytes")

// uploadArtifacts stores each collected artifact of a job, logging each
// outcome as a system line of the job's log. The artifacts stored are
// marked so; with a server that keeps no artifacts they are reported
// described only. The first artifact that cannot be stored, after retries,
// ends the uploads with an error naming it: the job fails with it.
func (a *Agent) uploadArtifacts(ctx context.Context, log *slog.Logger, job *agentv1.Job, ws *confine.Dir, arts []*agentv1.Artifact, ship *shipper) error {
	system := func(text string) {
		ship.add(executor.Line{Stream: executor.System, Text: text, Time: time.Now()})
	}
	for _, art := range arts {
		stored, err := a.uploadArtifact(ctx, log, job, ws, art, system)
		if errors.Is(err, errNotKept) {
			log.Info("artifact described, not stored", "path", art.GetPath(), "reason", err)
			system(fmt.Sprintf("artifact %s not kept: %s", art.GetPath(), err))
			continue
		}
		if err != nil {
			reason := reasonOf(err)
			log.Warn("artifact not stored", "path", art.GetPath(), "err", reason)
			system(fmt.Sprintf("artifact %s not stored: %s", art.GetPath(), reason))
			return fmt.Errorf("artifact %s not stored: %s", art.GetPath(), reason)
		}
		art.Stored = true
		art.CreatedAt, art.ExpiresAt = stored.GetCreatedAt(), stored.GetExpiresAt()
		log.Info("artifact uploaded", "path", art.GetPath(), "size_bytes", art.GetSizeBytes(), "sha256", art.GetSha256())
		system(fmt.Sprintf("artifact %s uploaded (%s, sha256 %s)", art.GetPath(), humanBytes(art.GetSizeBytes()), art.GetSha256()))
	}
	return nil
}

// reasonOf is an error as people read it: a gRPC error's message alone.
func reasonOf(err error) string {
	if st, ok := grpcstatus.FromError(err); ok {
		return st.Message()
	}
	return err.Error()
}

// temporary reports whether trying again may store the artifact: the
// server or the store did not answer, or failed on its side.
func temporary(err error) bool {
	var te *transfer.Error
	if errors.As(err, &te) {
		return te.Temporary()
	}
	switch grpcstatus.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return true
	}
	return false
}

// uploadArtifact stores one artifact, again while the server or the store
// is unavailable (for the agent's patience), saying so in the job's log.
func (a *Agent) uploadArtifact(ctx context.Context, log *slog.Logger, job *agentv1.Job, ws *confine.Dir, art *agentv1.Artifact, system func(string)) (*agentv1.Artifact, error) {
	r := a.retrier()
	for attempt := 0; ; attempt++ {
		stored, err := a.storeArtifact(ctx, job, ws, art)
		if err == nil || errors.Is(err, errNotKept) {
			return stored, err
		}
		if !temporary(err) {
			return nil, err
		}
		log.Info("artifact upload failed; trying again", "path", art.GetPath(), "err", reasonOf(err), "attempt", attempt+1)
		if attempt < 3 || attempt%10 == 0 {
			// Not every try: the agent tries for minutes, a heartbeat apart.
			system(fmt.Sprintf("artifact %s: %s; trying again (attempt %d)", art.GetPath(), reasonOf(err), attempt+1))
		}
		if !r.again(ctx) {
			return nil, err
		}
	}
}

// storeArtifact makes one try: the server says how the bytes go (straight
// to the store, or through it) and records the artifact once they are
// there.
func (a *Agent) storeArtifact(ctx context.Context, job *agentv1.Job, ws *confine.Dir, art *agentv1.Artifact) (*agentv1.Artifact, error) {
	header := &agentv1.ArtifactHeader{JobId: job.GetId(), Attempt: job.GetAttempt(), Path: art.GetPath(),
		SizeBytes: art.GetSizeBytes(), Sha256: art.GetSha256()}
	begin, err := a.rpc.BeginArtifactUpload(ctx, &agentv1.BeginArtifactUploadRequest{Header: header})
	if grpcstatus.Code(err) == codes.Unimplemented {
		return a.sendArtifact(ctx, header, ws) // a server from before presigned uploads
	}
	if err != nil {
		return nil, err
	}
	switch begin.GetTransfer() {
	case agentv1.ArtifactTransfer_ARTIFACT_TRANSFER_NOT_KEPT:
		return nil, errNotKept
	case agentv1.ArtifactTransfer_ARTIFACT_TRANSFER_SERVER:
		return a.sendArtifact(ctx, header, ws)
	case agentv1.ArtifactTransfer_ARTIFACT_TRANSFER_DIRECT:
	default:
		return nil, fmt.Errorf("the server answered an unknown transfer %v", begin.GetTransfer())
	}
	f, err := ws.Open(art.GetPath())
	if err != nil {
		return nil, fmt.Errorf("open artifact: %w", err)
	}
	defer f.Close()
	if err := transfer.Put(ctx, httpClient(), begin.GetUpload(), f, art.GetSizeBytes()); err != nil {
		return nil, err
	}
	done, err := a.rpc.FinishArtifactUpload(ctx, &agentv1.FinishArtifactUploadRequest{Header: header})
	if err != nil {
		return nil, err
	}
	return done.GetArtifact(), nil
}

// sendArtifact streams the header, then the file in chunks, through the
// server; the file is read through the confined workspace.
func (a *Agent) sendArtifact(ctx context.Context, header *agentv1.ArtifactHeader, ws *confine.Dir) (*agentv1.Artifact, error) {
	f, err := ws.Open(header.GetPath())
	if err != nil {
		return nil, fmt.Errorf("open artifact: %w", err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := a.rpc.UploadArtifact(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&agentv1.UploadArtifactRequest{Part: &agentv1.UploadArtifactRequest_Header{Header: header}}); err != nil {
		return nil, closeError(stream.CloseAndRecv())
	}
	buf := make([]byte, uploadChunk)
	for {
		n, rerr := io.ReadFull(f, buf)
		if n > 0 {
			// Send copies the message out before it returns.
			if err := stream.Send(&agentv1.UploadArtifactRequest{Part: &agentv1.UploadArtifactRequest_Data{Data: buf[:n]}}); err != nil {
				// io.EOF: the server ended the call; its answer says why.
				return nil, closeError(stream.CloseAndRecv())
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("read artifact: %w", rerr)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return nil, err
	}
	return resp.GetArtifact(), nil
}

func closeError(_ *agentv1.UploadArtifactResponse, err error) error {
	if err == nil {
		return errors.New("the server ended the upload early")
	}
	return err
}

// humanBytes formats a size as people read it: 512 B, 1.2 MiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
