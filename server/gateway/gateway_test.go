package gateway_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-arcade/arcade/server"
)

const (
	adminToken = "gateway-admin-token"
	readToken  = "gateway-read-token"
)

// startServer runs a whole server on SQLite with its HTTP listener and
// returns the listener's base URL.
func startServer(t *testing.T, tlsFiles ...string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := server.Config{
		Listen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", DataDir: dir,
		AgentToken: "gateway-agent-token", APIToken: adminToken,
		APITokens: []server.ScopedToken{{Token: readToken, Scope: "read"}},
	}
	if len(tlsFiles) == 2 {
		cfg.TLSCert, cfg.TLSKey = tlsFiles[0], tlsFiles[1]
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	scheme := "http"
	if len(tlsFiles) == 2 {
		scheme = "https"
	}
	return scheme + "://" + srv.HTTPAddr()
}

type reply struct {
	status int
	body   map[string]any
	raw    string
}

func do(t *testing.T, c *http.Client, method, url, token, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: string(raw)}
	json.Unmarshal(raw, &r.body) //nolint:errcheck // not every body is JSON
	return r
}

const pipelineYAML = `name: gw
stages:
  - name: build
    jobs:
      - name: compile
        commands: ["true"]
`

func TestGatewayAuthAndErrors(t *testing.T) {
	base := startServer(t)
	c := http.DefaultClient

	// No token, a wrong token: 401 with the gRPC message.
	r := do(t, c, "GET", base+"/v1/pipelines", "", "")
	if r.status != http.StatusUnauthorized || r.body["code"] != float64(16) || !strings.Contains(r.body["message"].(string), "authorization") {
		t.Fatalf("no token: got %d %s, want 401 Unauthenticated", r.status, r.raw)
	}
	if r := do(t, c, "GET", base+"/v1/pipelines", "wrong", ""); r.status != http.StatusUnauthorized {
		t.Fatalf("wrong token: got %d %s, want 401", r.status, r.raw)
	}
	// A read token may list but not create: 403.
	if r := do(t, c, "GET", base+"/v1/pipelines", readToken, ""); r.status != http.StatusOK {
		t.Fatalf("read token listing: got %d %s", r.status, r.raw)
	}
	body, _ := json.Marshal(map[string]string{"yaml": pipelineYAML})
	r = do(t, c, "POST", base+"/v1/pipelines", readToken, string(body))
	if r.status != http.StatusForbidden || r.body["code"] != float64(7) {
		t.Fatalf("read token creating: got %d %s, want 403 PermissionDenied", r.status, r.raw)
	}

	// The admin token creates; the pipeline is then read back by name.
	r = do(t, c, "POST", base+"/v1/pipelines", adminToken, string(body))
	if r.status != http.StatusOK {
		t.Fatalf("create pipeline: got %d %s", r.status, r.raw)
	}
	r = do(t, c, "GET", base+"/v1/pipelines/gw", readToken, "")
	p, _ := r.body["pipeline"].(map[string]any)
	if r.status != http.StatusOK || p["name"] != "gw" {
		t.Fatalf("get pipeline: got %d %s", r.status, r.raw)
	}
	// Trigger through the custom verb; the run lists its job by proto name.
	r = do(t, c, "POST", base+"/v1/pipelines/gw:trigger", adminToken, `{"params": {"X": "1"}}`)
	run, _ := r.body["run"].(map[string]any)
	if r.status != http.StatusOK || run["pipeline_id"] != p["id"] || run["params"].(map[string]any)["X"] != "1" {
		t.Fatalf("trigger: got %d %s", r.status, r.raw)
	}

	// Bad input: 400 naming the field; unknown ids: 404.
	r = do(t, c, "POST", base+"/v1/jobs", adminToken, `{"name": "x"}`)
	if r.status != http.StatusBadRequest || !strings.Contains(r.raw, "commands") {
		t.Fatalf("job without commands: got %d %s, want 400 naming commands", r.status, r.raw)
	}
	if r := do(t, c, "GET", base+"/v1/jobs/no-such-job", adminToken, ""); r.status != http.StatusNotFound {
		t.Fatalf("unknown job: got %d %s, want 404", r.status, r.raw)
	}
	// Agent-only methods have no HTTP binding.
	if r := do(t, c, "POST", base+"/v1/agents:register", adminToken, `{}`); r.status != http.StatusNotFound && r.status != http.StatusMethodNotAllowed {
		t.Fatalf("register over HTTP: got %d %s, want no route", r.status, r.raw)
	}
	// Artifact downloads go through the same authentication.
	if r := do(t, c, "GET", base+"/artifacts/some-job/out/app", "", ""); r.status != http.StatusUnauthorized {
		t.Fatalf("artifact without token: got %d %s, want 401", r.status, r.raw)
	}
}

func TestGatewayStreamNDJSON(t *testing.T) {
	base := startServer(t)
	c := http.DefaultClient
	r := do(t, c, "POST", base+"/v1/jobs", adminToken, `{"name": "waits", "commands": ["true"], "selector": "nobody-has-this"}`)
	job, _ := r.body["job"].(map[string]any)
	if r.status != http.StatusOK || job["id"] == nil {
		t.Fatalf("create job: got %d %s", r.status, r.raw)
	}
	id := job["id"].(string)

	// A stream without a token is refused with a status, not a 200.
	if r := do(t, c, "GET", base+"/v1/jobs/"+id+":watch", "", ""); r.status != http.StatusUnauthorized {
		t.Fatalf("stream without token: got %d %s, want 401", r.status, r.raw)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/jobs/"+id+":watch", nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("watch: HTTP %d", resp.StatusCode)
	}
	lines := bufio.NewScanner(resp.Body)
	next := func() map[string]any {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("stream ended: %v", lines.Err())
		}
		var msg struct {
			Result struct {
				Job map[string]any `json:"job"`
			} `json:"result"`
		}
		if err := json.Unmarshal(lines.Bytes(), &msg); err != nil {
			t.Fatalf("line %q is not JSON: %v", lines.Text(), err)
		}
		return msg.Result.Job
	}
	if j := next(); j["status"] != "JOB_STATUS_PENDING" || j["id"] != id {
		t.Fatalf("first message: %v, want the pending job", j)
	}
	// Cancelling the job shows on the open stream.
	if r := do(t, c, "POST", base+"/v1/jobs/"+id+":cancel", adminToken, `{"reason": "test"}`); r.status != http.StatusOK {
		t.Fatalf("cancel: got %d %s", r.status, r.raw)
	}
	for {
		if j := next(); j["status"] == "JOB_STATUS_CANCELLED" {
			break
		}
	}
}

// Every stream answers on its path, not the unary method whose path
// pattern would also match (GET /v1/runs/{run_id} and /v1/runs/ID:watch).
func TestGatewayStreamRoutes(t *testing.T) {
	base := startServer(t)
	c := http.DefaultClient
	body, _ := json.Marshal(map[string]string{"yaml": pipelineYAML})
	if r := do(t, c, "POST", base+"/v1/pipelines", adminToken, string(body)); r.status != http.StatusOK {
		t.Fatalf("create pipeline: %d %s", r.status, r.raw)
	}
	r := do(t, c, "POST", base+"/v1/pipelines/gw:trigger", adminToken, `{}`)
	run, _ := r.body["run"].(map[string]any)
	if r.status != http.StatusOK {
		t.Fatalf("trigger: %d %s", r.status, r.raw)
	}
	runID := run["id"].(string)
	jobID := run["jobs"].([]any)[0].(map[string]any)["id"].(string)
	for path, field := range map[string]string{
		"/v1/runs/" + runID + ":watch":                   "run",
		"/v1/jobs/" + jobID + ":watch":                   "job",
		"/v1/agents:watch?agent_id=no-such-agent":        "", // NotFound, from the stream
		"/v1/jobs/" + jobID + "/log:stream?follow=false": "lines",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+readToken)
		resp, err := c.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		resp.Body.Close()
		cancel()
		if field == "" {
			if resp.StatusCode != http.StatusNotFound || !strings.Contains(line, "no-such-agent") {
				t.Errorf("GET %s: %d %s, want the stream's NotFound", path, resp.StatusCode, line)
			}
			continue
		}
		if field == "lines" && line == "" && resp.StatusCode == http.StatusOK {
			continue // no line yet: the stream ends at once without follow
		}
		var msg struct {
			Result map[string]json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal([]byte(line), &msg); err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %q, want a stream message", path, resp.StatusCode, line)
			continue
		}
		if _, ok := msg.Result[field]; !ok {
			t.Errorf("GET %s: first message %s, want %s", path, line, field)
		}
	}
}

func TestGatewayServesDashboard(t *testing.T) {
	base := startServer(t)
	for _, path := range []string{"/", "/pipelines", "/jobs/some-id"} {
		r := do(t, http.DefaultClient, "GET", base+path, "", "")
		if r.status != http.StatusOK || !strings.Contains(r.raw, `<script type="module" src="/js/app.js">`) {
			t.Fatalf("GET %s: %d, want the dashboard page", path, r.status)
		}
	}
	resp, err := http.Get(base + "/js/app.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.Contains(ct, "javascript") {
		t.Fatalf("app.js: %d %q", resp.StatusCode, ct)
	}
	if r := do(t, http.DefaultClient, "GET", base+"/js/missing.js", "", ""); r.status != http.StatusNotFound {
		t.Fatalf("missing asset: %d, want 404", r.status)
	}
}

// With TLS, the HTTP listener serves HTTPS with the server's certificate and
// the gateway reaches gRPC over the same TLS in process.
func TestGatewayTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	base := startServer(t, certFile, keyFile)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}, ForceAttemptHTTP2: true}}
	defer c.CloseIdleConnections()
	// Browsers speak HTTP/2 over TLS, which also frees them from six
	// connections per host for the dashboard's streams.
	req, _ := http.NewRequest("GET", base+"/", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("HTTPS dashboard served over %s, want HTTP/2", resp.Proto)
	}
	if r := do(t, c, "GET", base+"/v1/agents", adminToken, ""); r.status != http.StatusOK {
		t.Fatalf("HTTPS call: got %d %s", r.status, r.raw)
	}
	if r := do(t, c, "GET", base+"/v1/agents", "", ""); r.status != http.StatusUnauthorized {
		t.Fatalf("HTTPS call without token: got %d %s, want 401", r.status, r.raw)
	}
	// A plaintext request to the TLS listener never reaches the API.
	if r := do(t, http.DefaultClient, "GET", strings.Replace(base, "https", "http", 1)+"/v1/agents", adminToken, ""); r.status == http.StatusOK {
		t.Fatal("plaintext request served on the TLS listener")
	}
}

func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
