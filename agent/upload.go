package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/go-arcade/arcade/agent/executor"
	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	"github.com/go-arcade/arcade/internal/confine"
)

const (
	// uploadChunk is the most bytes one UploadArtifact message carries.
	uploadChunk = 256 << 10
	// uploadTries bounds the tries of one artifact while the server is
	// unavailable.
	uploadTries = 8
)

// uploadArtifacts streams each collected artifact of a job to the server
// and logs the outcome of each as a system line of the job's log. The
// artifacts the server took are marked stored; one that fails is logged
// and reported with the job unstored (the job's outcome does not change).
func (a *Agent) uploadArtifacts(ctx context.Context, log *slog.Logger, job *agentv1.Job, ws *confine.Dir, arts []*agentv1.Artifact, ship *shipper) {
	system := func(text string) {
		ship.add(executor.Line{Stream: executor.System, Text: text, Time: time.Now()})
	}
	for _, art := range arts {
		stored, err := a.uploadArtifact(ctx, job, ws, art)
		if err != nil {
			log.Warn("artifact not uploaded", "path", art.GetPath(), "err", err)
			system(fmt.Sprintf("artifact %s not uploaded: %s", art.GetPath(), grpcstatus.Convert(err).Message()))
			continue
		}
		art.Stored = true
		art.CreatedAt, art.ExpiresAt = stored.GetCreatedAt(), stored.GetExpiresAt()
		log.Info("artifact uploaded", "path", art.GetPath(), "size_bytes", art.GetSizeBytes(), "sha256", art.GetSha256())
		system(fmt.Sprintf("artifact %s uploaded (%s, sha256 %s)", art.GetPath(), humanBytes(art.GetSizeBytes()), art.GetSha256()))
	}
}

// uploadArtifact sends one artifact, again while the server is unavailable.
func (a *Agent) uploadArtifact(ctx context.Context, job *agentv1.Job, ws *confine.Dir, art *agentv1.Artifact) (*agentv1.Artifact, error) {
	for attempt := 0; ; attempt++ {
		stored, err := a.sendArtifact(ctx, job, ws, art)
		if err == nil {
			return stored, nil
		}
		if grpcstatus.Code(err) != codes.Unavailable || attempt+1 >= uploadTries || a.refused.Load() {
			return nil, err
		}
		if !sleep(ctx, backoff(attempt)) {
			return nil, err
		}
	}
}

// sendArtifact streams the header, then the file in chunks, read through
// the confined workspace.
func (a *Agent) sendArtifact(ctx context.Context, job *agentv1.Job, ws *confine.Dir, art *agentv1.Artifact) (*agentv1.Artifact, error) {
	f, err := ws.Open(art.GetPath())
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
	header := &agentv1.ArtifactHeader{JobId: job.GetId(), Attempt: job.GetAttempt(), Path: art.GetPath(),
		SizeBytes: art.GetSizeBytes(), Sha256: art.GetSha256()}
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
