// Package s3test gives tests a real S3 server: Versity Gateway
// (versitygw), an S3 gateway over a local folder that checks SigV4 and
// payload digests as AWS does.
//
// [Start] runs one versitygw process per call, on a free port of 127.0.0.1
// over a fresh temporary folder, with random credentials; it is stopped
// when the test ends. The binary is looked up in $ARCADE_VERSITYGW, then
// PATH, then $(go env GOPATH)/bin and ~/.cache/arcade-ci/bin (where
// .ci/run builds it: go install
// github.com/versity/versitygw/cmd/versitygw@v1.8.0). When it is missing
// Start skips the test, unless ARCADE_REQUIRE_S3=1, in which case it fails
// it.
package s3test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"go/build"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-arcade/arcade/plugins/s3-store/s3"
	"github.com/go-arcade/arcade/plugins/s3-store/sigv4"
)

// RequireEnv set to 1 turns a missing versitygw from a skipped test into a
// failed one (for CI).
const RequireEnv = "ARCADE_REQUIRE_S3"

// Region is the region the server answers for.
const Region = "us-east-1"

// Server is a running S3 server.
type Server struct {
	// Endpoint is http://127.0.0.1:PORT.
	Endpoint string
	// AccessKey and SecretKey are the root credentials.
	AccessKey, SecretKey string
	// Dir holds the buckets, one folder each.
	Dir string

	bin, addr, logPath string
	mu                 sync.Mutex
	cmd                *exec.Cmd
	done               chan struct{}
}

// Binary returns the versitygw binary, "" when there is none.
func Binary() string {
	if p := os.Getenv("ARCADE_VERSITYGW"); p != "" {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	var dirs []string
	if gp := build.Default.GOPATH; gp != "" {
		dirs = append(dirs, filepath.Join(filepath.SplitList(gp)[0], "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".cache", "arcade-ci", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// Start starts a server over a new folder; it stops when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin := Binary()
	if bin == "" {
		const how = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"
		if os.Getenv(RequireEnv) == "1" {
			tb.Fatalf("s3test: versitygw not found, and %s=1 (%s)", RequireEnv, how)
		}
		tb.Skipf("s3test: versitygw not found, skipping (%s, or set %s=1 to fail instead)", how, RequireEnv)
	}
	s := &Server{AccessKey: "AKARCADE" + randHex(6), SecretKey: "arcade-s3test-" + randHex(16),
		Dir: tb.TempDir(), bin: bin, logPath: filepath.Join(tb.TempDir(), "versitygw.log")}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.addr = l.Addr().String()
	l.Close()
	s.Endpoint = "http://" + s.addr
	tb.Cleanup(func() {
		s.stop()
		if tb.Failed() {
			if b, err := os.ReadFile(s.logPath); err == nil && len(b) > 0 {
				tb.Logf("--- versitygw log ---\n%s", tail(b, 40))
			}
		}
	})
	s.Up(tb)
	return s
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return strings.ToUpper(hex.EncodeToString(b))
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Up starts the server (again, after Down) on its address and folder, and
// waits until it answers.
func (s *Server) Up(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(s.bin, "--port", s.addr, "--region", Region, "--quiet", "--health", "/health", "posix", s.Dir)
	// Credentials through the environment: not in process listings.
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.AccessKey, "ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		tb.Fatalf("s3test: start versitygw: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.Endpoint + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-done:
			b, _ := os.ReadFile(s.logPath)
			tb.Fatalf("s3test: versitygw exited at start:\n%s", tail(b, 20))
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("s3test: versitygw does not answer on %s: %v", s.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Down stops the server; Up starts it again.
func (s *Server) Down() { s.stop() }

func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
}

// Client returns an S3 client of bucket with the root credentials, over
// net/http.
func (s *Server) Client(bucket string) *s3.Client {
	u, _ := url.Parse(s.Endpoint)
	return &s3.Client{Config: s3.Config{Endpoint: u, Region: Region, Bucket: bucket,
		Credentials: sigv4.Credentials{AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey}}, Do: HTTP}
}

// CreateBucket creates a bucket.
func (s *Server) CreateBucket(tb testing.TB, name string) {
	tb.Helper()
	c := s.Client(name)
	u := c.BucketURL()
	h := c.Sign("PUT", u, nil, sigv4.EmptySHA256)
	resp, err := HTTP(&s3.Request{Method: "PUT", URL: u.String(), Header: h})
	if err != nil {
		tb.Fatalf("s3test: create bucket %s: %v", name, err)
	}
	if resp.Status != http.StatusOK {
		tb.Fatalf("s3test: create bucket %s: HTTP %d %s", name, resp.Status, resp.Body)
	}
}

// Keys returns the keys of bucket under prefix, as S3 lists them.
func (s *Server) Keys(tb testing.TB, bucket, prefix string) []string {
	tb.Helper()
	var keys []string
	token := ""
	c := s.Client(bucket)
	for {
		page, next, err := c.ListKeys(prefix, token, 1000)
		if err != nil {
			tb.Fatalf("s3test: list %s/%s: %v", bucket, prefix, err)
		}
		keys = append(keys, page...)
		if next == "" {
			return keys
		}
		token = next
	}
}

// HTTP makes a request with net/http.
func HTTP(r *s3.Request) (*s3.Response, error) {
	req, err := http.NewRequest(r.Method, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(len(r.Body))
	for k, v := range r.Header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	h := map[string]string{}
	for k, v := range resp.Header {
		h[strings.ToLower(k)] = strings.Join(v, ",")
	}
	return &s3.Response{Status: resp.StatusCode, Header: h, Body: body}, nil
}
