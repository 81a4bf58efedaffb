package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strconv"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// artifactHandler serves GET /artifacts/{job_id}/{path...}[?attempt=N]: a
// redirect to a presigned URL of the store when the server hands them out
// (GetArtifactURL), else the bytes of DownloadArtifact as a file, which a
// JSON stream of base64 chunks is not. The bearer token is forwarded like
// the gateway does; it does not follow the redirect (the URL is its own
// credential).
func artifactHandler(jobs jobv1.JobServiceClient, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := &jobv1.DownloadArtifactRequest{JobId: r.PathValue("job_id"), Path: r.PathValue("path")}
		if a := r.URL.Query().Get("attempt"); a != "" {
			n, err := strconv.ParseInt(a, 10, 32)
			if err != nil {
				writeError(w, status.Error(codes.InvalidArgument, "attempt: want a number"))
				return
			}
			req.Attempt = int32(n)
		}
		ctx := r.Context()
		if auth := r.Header.Get("Authorization"); auth != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", auth)
		}
		link, err := jobs.GetArtifactURL(ctx, &jobv1.GetArtifactURLRequest{JobId: req.JobId, Path: req.Path, Attempt: req.Attempt})
		if err != nil {
			writeError(w, err)
			return
		}
		if link.GetUrl() != "" {
			if a := link.GetArtifact(); a.GetSha256() != "" {
				w.Header().Set("X-Checksum-Sha256", a.GetSha256())
			}
			w.Header().Set("Cache-Control", "no-store")
			http.Redirect(w, r, link.GetUrl(), http.StatusTemporaryRedirect)
			return
		}
		stream, err := jobs.DownloadArtifact(ctx, req)
		if err != nil {
			writeError(w, err)
			return
		}
		first, err := stream.Recv()
		if err != nil {
			writeError(w, err)
			return
		}
		name := path.Base(req.Path)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
		if a := first.GetArtifact(); a != nil && a.GetSizeBytes() > 0 {
			w.Header().Set("Content-Length", strconv.FormatInt(a.GetSizeBytes(), 10))
			if a.GetSha256() != "" {
				w.Header().Set("X-Checksum-Sha256", a.GetSha256())
			}
		}
		w.WriteHeader(http.StatusOK)
		for msg := first; ; {
			if _, err := w.Write(msg.GetData()); err != nil {
				return // the client went away
			}
			if msg, err = stream.Recv(); err != nil {
				if !errors.Is(err, io.EOF) {
					// Too late for a status: cut the body short so the
					// client sees an incomplete download.
					log.Warn("artifact download broke off", "job", req.JobId, "path", req.Path, "err", err)
					panic(http.ErrAbortHandler)
				}
				return
			}
		}
	})
}

// writeError answers a gRPC error the way the gateway does: the HTTP status
// of its code and a JSON body with code and message.
func writeError(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(runtime.HTTPStatusFromCode(st.Code()))
	json.NewEncoder(w).Encode(map[string]any{"code": int(st.Code()), "message": st.Message()}) //nolint:errcheck // best effort
}
