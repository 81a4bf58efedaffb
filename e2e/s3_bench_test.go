package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/go-arcade/arcade/agent/transfer"
	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/internal/s3test"
)

// BenchmarkS3ArtifactTransfer moves a 64 MiB and a 1 GiB artifact between
// an agent and a real S3 server (Versity Gateway) three ways, in the same
// run: curl --aws-sigv4 PUT and GET of the same file to the same server
// (the baseline; also curl's GET piped to sha256sum, which checks what it
// gets as the presigned path does), the presigned path
// (BeginArtifactUpload, a PUT straight to the store, FinishArtifactUpload;
// GetArtifactURL and a GET with its sha256 checked), and through the server
// (UploadArtifact and DownloadArtifact, the bytes through the s3-store
// plugin). It reports the best MB/s of each way over three tries (one
// through the server) and the presigned path's ratios to curl's. Run it
// with -benchtime 1x (make bench).
func BenchmarkS3ArtifactTransfer(b *testing.B) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		b.Skip("no curl")
	}
	srv := s3test.Start(b)
	srv.CreateBucket(b, "bench")
	c := s3Cluster(b, "sqlite://"+filepath.Join(b.TempDir(), "arcade.db"), s3Ring(), srv, "bench", "S3_SECRET_ACCESS_KEY", true, srv.SecretKey,
		"--lease-ttl", "30m", "--artifact-max-bytes", fmt.Sprint(2<<30))
	agents, id := fakeAgent(b, c, "bench")
	j := c.create(&jobv1.CreateJobRequest{Name: "big", Commands: []string{"true"}, Selector: "fake=bench"})
	ctx := context.Background()
	if f, err := agents.FetchJob(ctx, &agentv1.FetchJobRequest{AgentId: id, Wait: durationpb.New(5 * time.Second)}); err != nil || f.GetJob().GetId() != j.GetId() {
		b.Fatalf("lease: %v %v", f, err)
	}
	client := transfer.Client()
	for _, size := range []int64{64 << 20, 1 << 30} {
		name := fmt.Sprintf("%dMiB", size>>20)
		b.Run(name, func(b *testing.B) {
			file := filepath.Join(b.TempDir(), name+".bin")
			sum := writeRandom(b, file, size)
			b.SetBytes(size)
			// Each way runs reps times, interleaved with the others, and the
			// best rate counts: the machine is shared, and a moment of load
			// should not decide a ratio. Through the server, once (slow).
			reps := 3
			rates := map[string]float64{}
			timed := func(what string, fn func() error) {
				start := time.Now()
				if err := fn(); err != nil {
					b.Fatalf("%s: %v", what, err)
				}
				rates[what] = max(rates[what], float64(size)/1e6/time.Since(start).Seconds())
			}
			curlArgs := func(extra ...string) []string {
				return append([]string{"-sS", "--fail", "--aws-sigv4", "aws:amz:" + s3test.Region + ":s3", "--user", srv.AccessKey + ":" + srv.SecretKey,
					"-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"}, extra...)
			}
			curlURL := srv.Endpoint + "/bench/curl/" + name + ".bin"
			header := func(path string) *agentv1.ArtifactHeader {
				return &agentv1.ArtifactHeader{JobId: j.GetId(), Attempt: 1, Path: path, SizeBytes: size, Sha256: sum}
			}
			for i := range b.N * reps {
				timed("curl_put", func() error {
					out, err := exec.Command(curl, curlArgs("-T", file, curlURL)...).CombinedOutput()
					if err != nil {
						return fmt.Errorf("%v: %s", err, out)
					}
					return nil
				})
				timed("presigned_put", func() error {
					h := header("presigned-" + name + ".bin")
					begin, err := agents.BeginArtifactUpload(ctx, &agentv1.BeginArtifactUploadRequest{Header: h})
					if err != nil {
						return err
					}
					if begin.GetTransfer() != agentv1.ArtifactTransfer_ARTIFACT_TRANSFER_DIRECT {
						return fmt.Errorf("transfer %v, want direct", begin.GetTransfer())
					}
					f, err := os.Open(file)
					if err != nil {
						return err
					}
					defer f.Close()
					if err := transfer.Put(ctx, client, begin.GetUpload(), f, size); err != nil {
						return err
					}
					_, err = agents.FinishArtifactUpload(ctx, &agentv1.FinishArtifactUploadRequest{Header: h})
					return err
				})
				if i%reps == 0 {
					timed("server_put", func() error {
						return uploadFile(agents, header("server-"+name+".bin"), file)
					})
				}
				timed("curl_get", func() error {
					out, err := exec.Command(curl, curlArgs("-o", os.DevNull, curlURL)...).CombinedOutput()
					if err != nil {
						return fmt.Errorf("%v: %s", err, out)
					}
					return nil
				})
				// The same download, checked as the presigned path checks it.
				timed("curl_sha256sum_get", func() error {
					cmd := exec.Command("sh", append([]string{"-c", `"$0" "$@" | sha256sum`, curl}, curlArgs(curlURL)...)...)
					out, err := cmd.CombinedOutput()
					if err != nil || !strings.HasPrefix(string(out), sum) {
						return fmt.Errorf("%v: %s", err, out)
					}
					return nil
				})
				timed("presigned_get", func() error {
					link, err := c.jobs.GetArtifactURL(ctx, &jobv1.GetArtifactURLRequest{JobId: j.GetId(), Path: "presigned-" + name + ".bin"})
					if err != nil {
						return err
					}
					_, err = transfer.Get(ctx, client, &agentv1.PresignedRequest{Method: "GET", Url: link.GetUrl()}, io.Discard, size, sum)
					return err
				})
				if i%reps == 0 {
					timed("server_get", func() error {
						return downloadDiscard(c, j.GetId(), "server-"+name+".bin", size)
					})
				}
			}
			for what, r := range rates {
				b.ReportMetric(r, what+"_MB/s")
			}
			b.ReportMetric(rates["presigned_put"]/rates["curl_put"], "presigned_put/curl")
			b.ReportMetric(rates["presigned_get"]/rates["curl_get"], "presigned_get/curl")
			b.ReportMetric(rates["presigned_get"]/rates["curl_sha256sum_get"], "presigned_get/curl_sha256sum")
		})
	}
}

// writeRandom writes size random bytes to path and returns their sha256.
func writeRandom(b *testing.B, path string, size int64) string {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	r := rand.NewChaCha8([32]byte{7})
	buf := make([]byte, 1<<20)
	for n := int64(0); n < size; n += int64(len(buf)) {
		r.Read(buf)
		h.Write(buf)
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// uploadFile streams a file through UploadArtifact.
func uploadFile(agents agentv1.AgentServiceClient, h *agentv1.ArtifactHeader, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	stream, err := agents.UploadArtifact(context.Background())
	if err != nil {
		return err
	}
	if err := stream.Send(&agentv1.UploadArtifactRequest{Part: &agentv1.UploadArtifactRequest_Header{Header: h}}); err != nil {
		_, err = stream.CloseAndRecv()
		return err
	}
	buf := make([]byte, 256<<10)
	for {
		n, rerr := io.ReadFull(f, buf)
		if n > 0 {
			if err := stream.Send(&agentv1.UploadArtifactRequest{Part: &agentv1.UploadArtifactRequest_Data{Data: buf[:n]}}); err != nil {
				_, err = stream.CloseAndRecv()
				return err
			}
		}
		if rerr != nil {
			break
		}
	}
	_, err = stream.CloseAndRecv()
	return err
}

// downloadDiscard reads an artifact through DownloadArtifact and checks its
// size.
func downloadDiscard(c *cluster, jobID, path string, size int64) error {
	stream, err := c.jobs.DownloadArtifact(context.Background(), &jobv1.DownloadArtifactRequest{JobId: jobID, Path: path})
	if err != nil {
		return err
	}
	var n int64
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		n += int64(len(msg.GetData()))
	}
	if n != size {
		return fmt.Errorf("%d bytes, want %d", n, size)
	}
	return nil
}
