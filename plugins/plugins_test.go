package plugins_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/host/pdktest"
	"github.com/go-arcade/arcade/pdk"
)

// names are the first-party plugins, one folder each.
var names = []string{"go-lint", "junit", "http-deploy", "secret-scan", "webhook", "log-notify", "fs-store", "s3-store", "semver", "forge-status"}

// TestMain removes the builds when the tests end.
func TestMain(m *testing.M) { pdktest.Main(m) }

var builds struct {
	once  sync.Once
	paths map[string]string
	err   error
}

// wasm returns the plugin's module. The first call builds all of them, two
// at a time, once per test binary.
func wasm(t testing.TB, name string) string {
	t.Helper()
	builds.once.Do(func() {
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, 2)
		builds.paths = map[string]string{}
		var errs []error
		for _, n := range names {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				path, err := pdktest.BuildErr("./" + n)
				mu.Lock()
				defer mu.Unlock()
				builds.paths[n] = path
				errs = append(errs, err)
			})
		}
		wg.Wait()
		builds.err = errors.Join(errs...)
	})
	if builds.err != nil {
		t.Fatal(builds.err)
	}
	return builds.paths[name]
}

func ws(c string) *pdk.StepContext { return &pdk.StepContext{Workspace: c} }

// server starts an HTTP server on 127.0.0.1 recording the requests.
type recorded struct {
	Method, Path, Auth string
	Body               []byte
}

type hookServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

func newServer(t *testing.T, reply string) *hookServer {
	t.Helper()
	s := &hookServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, recorded{r.Method, r.URL.EscapedPath(), r.Header.Get("Authorization"), b})
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, reply)
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Listener = l
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *hookServer) last(t *testing.T) recorded {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		t.Fatal("the server received nothing")
	}
	return s.reqs[len(s.reqs)-1]
}

func findingFiles(fs []pdk.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s:%d %s", f.File, f.Line, f.Rule))
	}
	return out
}

func TestGoLint(t *testing.T) {
	p := pdktest.Load(t, wasm(t, "go-lint"), pdktest.Options{Kind: "ci", ReadOnly: true, Workspace: map[string]string{
		"go.mod":             "module x\n",
		"main.go":            "package main\n\nfunc main() {}\n",
		"pkg/ugly.go":        "package pkg\n\nfunc  Ugly( ) int {\nreturn 1}\n",
		"pkg/broken.go":      "package pkg\n\nfunc Broken( {\n",
		"vendor/dep/v.go":    "package   dep\n",
		"docs/readme.md":     "not go",
		".hidden/skipped.go": "package  x\n",
	}})
	var resp pdk.StepResponse
	if err := p.Call("lint", pdk.StepRequest{Context: ws("/workspace")}, &resp); err != nil {
		t.Fatal(err)
	}
	got := findingFiles(resp.Findings)
	if resp.Status != pdk.StatusFailure || len(got) != 2 ||
		!strings.HasPrefix(got[0], "pkg/broken.go:3 parse") || got[1] != "pkg/ugly.go:3 gofmt" {
		t.Fatalf("status %s, findings %v", resp.Status, got)
	}
	if !strings.Contains(resp.Summary, "pkg/ugly.go") || resp.Metrics["files_checked"] != 3 {
		t.Fatalf("summary %q metrics %v", resp.Summary, resp.Metrics)
	}

	resp = pdk.StepResponse{}
	clean := pdktest.Load(t, wasm(t, "go-lint"), pdktest.Options{Kind: "ci", ReadOnly: true,
		Workspace: map[string]string{"main.go": "package main\n\nfunc main() {}\n"}})
	if err := clean.Call("lint", pdk.StepRequest{Context: ws("/workspace")}, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Status != pdk.StatusSuccess || len(resp.Findings) != 0 {
		t.Fatalf("clean tree: %s %v", resp.Status, resp.Findings)
	}
}

const junitReport = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="api" tests="4" failures="2">
    <testcase classname="api.Users" name="TestCreate" time="0.1"/>
    <testcase classname="api.Users" name="TestDelete" file="api/users_test.go" line="42"><failure message="expected 204, got 500">trace</failure></testcase>
    <testcase classname="api.Users" name="TestList"><failure message="timeout"/></testcase>
    <testcase classname="api.Users" name="TestSkip"><skipped/></testcase>
  </testsuite>
  <testsuite name="db" tests="3" failures="1" errors="1">
    <testcase classname="db.Pool" name="TestOpen"/>
    <testcase classname="db.Pool" name="TestClose"><failure>closed twice
more</failure></testcase>
    <testcase classname="db.Pool" name="TestPanic"><error message="nil pointer"/></testcase>
  </testsuite>
</testsuites>
`

func TestJUnit(t *testing.T) {
	p := pdktest.Load(t, wasm(t, "junit"), pdktest.Options{Kind: "ci", ReadOnly: true, Workspace: map[string]string{
		"reports/TEST-all.xml": junitReport,
		"pom.xml":              "<project/>", // not a report
	}})
	var resp pdk.StepResponse
	if err := p.Call("test", pdk.StepRequest{Context: ws("/workspace")}, &resp); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"tests": 7, "passed": 2, "failures": 3, "errors": 1, "skipped": 1}
	for k, v := range want {
		if resp.Metrics[k] != v {
			t.Errorf("%s = %v, want %v", k, resp.Metrics[k], v)
		}
	}
	if resp.Status != pdk.StatusFailure || len(resp.Findings) != 4 || len(resp.Files) != 1 {
		t.Fatalf("status %s, %d findings, files %v", resp.Status, len(resp.Findings), resp.Files)
	}
	if f := resp.Findings[0]; f.File != "api/users_test.go" || f.Line != 42 || !strings.Contains(f.Message, "expected 204, got 500") {
		t.Errorf("first finding %+v", f)
	}
	t.Log(resp.Summary)

	pass := pdktest.Load(t, wasm(t, "junit"), pdktest.Options{Kind: "ci", ReadOnly: true, Workspace: map[string]string{
		"out/r.xml": `<testsuite name="x"><testcase name="a"/><testcase name="b"/></testsuite>`}})
	resp = pdk.StepResponse{}
	if err := pass.Call("test", pdk.StepRequest{Context: ws("/workspace"), Params: pdk.Params{"reports": "out/*.xml"}}, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Status != pdk.StatusSuccess || resp.Metrics["tests"] != 2 {
		t.Fatalf("passing report: %s %v", resp.Status, resp.Metrics)
	}
}

func TestHTTPDeploy(t *testing.T) {
	srv := newServer(t, `{"id":"d-42","url":"https://staging.example.com"}`)
	p := pdktest.Load(t, wasm(t, "http-deploy"), pdktest.Options{Kind: "cd", Hosts: []string{"127.0.0.1"},
		Config: map[string]string{"endpoint": srv.URL + "/api", "token": "s3cret", "service": "web"}})
	req := pdk.DeployRequest{Environment: "staging", Version: "1.4.0", Artifacts: []string{"web.tar.gz"},
		Context: &pdk.StepContext{Commit: "abc123", JobID: "job-1"}}
	var resp pdk.StepResponse
	if err := p.Call("deploy", req, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Status != pdk.StatusSuccess || resp.Summary != "deployed web 1.4.0 to staging (deployment d-42) at https://staging.example.com" {
		t.Fatalf("%s: %q", resp.Status, resp.Summary)
	}
	got := srv.last(t)
	var body map[string]any
	_ = json.Unmarshal(got.Body, &body)
	if got.Method != "POST" || got.Path != "/api/deploy" || got.Auth != "Bearer s3cret" ||
		body["environment"] != "staging" || body["version"] != "1.4.0" || body["commit"] != "abc123" || body["service"] != "web" {
		t.Fatalf("server got %s %s auth=%q body %s", got.Method, got.Path, got.Auth, got.Body)
	}
	resp = pdk.StepResponse{}
	if err := p.Call("rollback", pdk.DeployRequest{Environment: "staging"}, &resp); err != nil {
		t.Fatal(err)
	}
	if got := srv.last(t); got.Path != "/api/rollback" || !strings.HasPrefix(resp.Summary, "rolled back web") {
		t.Fatalf("rollback: %s, %q", got.Path, resp.Summary)
	}

	// The same endpoint under a name that is not granted.
	denied := pdktest.Load(t, wasm(t, "http-deploy"), pdktest.Options{Name: "deploy-denied", Kind: "cd", Hosts: []string{"127.0.0.1"},
		Config: map[string]string{"endpoint": strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)}})
	err := denied.Call("deploy", req, &resp)
	if !errors.Is(err, host.ErrHostNotGranted) {
		t.Fatalf("ungranted endpoint: %v", err)
	}
	t.Logf("ungranted endpoint: %v", err)
}

func TestSecretScan(t *testing.T) {
	files := map[string]string{
		"main.go":          "package main\n\nfunc main() {}\n",
		"deploy/prod.env":  "REGION=eu-west-1\nAWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n",
		"keys/id_rsa":      "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\n",
		"testdata/fake.go": `const tok = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"` + "\n",
		"docs/ok.md":       "token: ghp_abcdefghijklmnopqrstuvwxyz0123456789 // arcade:allow-secret\n",
	}
	p := pdktest.Load(t, wasm(t, "secret-scan"), pdktest.Options{Kind: "security", ReadOnly: true, Workspace: files})
	var resp pdk.StepResponse
	if err := p.Call("scan", pdk.StepRequest{Context: ws("/workspace"), Params: pdk.Params{"allow": []any{"testdata/*"}}}, &resp); err != nil {
		t.Fatal(err)
	}
	got := findingFiles(resp.Findings)
	if resp.Status != pdk.StatusFailure || len(got) != 2 || got[0] != "deploy/prod.env:2 aws-access-key-id" || got[1] != "keys/id_rsa:1 private-key" {
		t.Fatalf("status %s findings %v", resp.Status, got)
	}
	if strings.Contains(resp.Findings[0].Message, "AKIAIOSFODNN7EXAMPLE") {
		t.Errorf("finding shows the secret: %s", resp.Findings[0].Message)
	}
	// Without the allow-list the test fixture is found too.
	resp = pdk.StepResponse{}
	if err := p.Call("scan", pdk.StepRequest{Context: ws("/workspace")}, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Findings) != 3 {
		t.Fatalf("without allow: %v", findingFiles(resp.Findings))
	}

	resp = pdk.StepResponse{}
	clean := pdktest.Load(t, wasm(t, "secret-scan"), pdktest.Options{Kind: "security", ReadOnly: true,
		Workspace: map[string]string{"main.go": "package main\n", "README.md": "# hello\n"}})
	if err := clean.Call("scan", pdk.StepRequest{Context: ws("/workspace")}, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Status != pdk.StatusSuccess || len(resp.Findings) != 0 {
		t.Fatalf("clean tree: %s %v", resp.Status, findingFiles(resp.Findings))
	}
}

func TestPipelineAudit(t *testing.T) {
	pipeline := `name: release
labels:
  team: web
steps:
  - name: setup
    run: curl -fsSL https://get.example.com | sh
  - name: build
    run: make build
`
	p := pdktest.Load(t, wasm(t, "secret-scan"), pdktest.Options{Kind: "security", ReadOnly: true,
		Workspace: map[string]string{".arcade.yaml": pipeline}})
	var resp pdk.StepResponse
	params := pdk.Params{"required_labels": []any{"team", "cost-center"}}
	if err := p.Call("audit", pdk.StepRequest{Context: ws("/workspace"), Params: params}, &resp); err != nil {
		t.Fatal(err)
	}
	got := findingFiles(resp.Findings)
	if resp.Status != pdk.StatusFailure || len(got) != 2 || got[0] != ".arcade.yaml:6 forbidden-command" || got[1] != ".arcade.yaml:0 required-label" ||
		!strings.Contains(resp.Findings[1].Message, "cost-center") {
		t.Fatalf("status %s findings %v", resp.Status, got)
	}
	resp = pdk.StepResponse{}
	params = pdk.Params{"required_labels": []any{"team"}, "forbidden": []any{`\bsudo\b`}}
	if err := p.Call("audit", pdk.StepRequest{Context: ws("/workspace"), Params: params}, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Status != pdk.StatusSuccess {
		t.Fatalf("relaxed policy: %v", findingFiles(resp.Findings))
	}

	// The server hands the definition inline; a secret written into it is
	// a finding.
	resp = pdk.StepResponse{}
	inline := "name: deploy\nenv:\n  AWS_KEY: AKIAABCDEFGHIJKLMNOP\nstages: []\n"
	params = pdk.Params{"definition": inline, "pipeline": "pipeline deploy"}
	if err := p.Call("audit", pdk.StepRequest{Params: params}, &resp); err != nil {
		t.Fatal(err)
	}
	if got := findingFiles(resp.Findings); resp.Status != pdk.StatusFailure || len(got) != 1 || got[0] != "pipeline deploy:3 aws-access-key-id" {
		t.Fatalf("inline definition with a key: status %s findings %v", resp.Status, got)
	}
	resp = pdk.StepResponse{}
	params = pdk.Params{"definition": "name: deploy\nenv:\n  REGION: eu-west-1\n"}
	if err := p.Call("audit", pdk.StepRequest{Params: params}, &resp); err != nil || resp.Status != pdk.StatusSuccess {
		t.Fatalf("clean inline definition: %v %s %v", err, resp.Status, findingFiles(resp.Findings))
	}
}

func TestWebhook(t *testing.T) {
	srv := newServer(t, `{"ok":true}`)
	event := &pdk.NotifyEvent{Type: "job.finished", JobID: "job-7", Status: "failed", URL: "https://arcade.example.com/jobs/job-7"}
	for _, tc := range []struct {
		format string
		want   map[string]any
	}{
		{"generic", map[string]any{"channel": "#builds", "title": "Build failed", "body": "job job-7 failed", "severity": "SEVERITY_HIGH"}},
		{"slack", map[string]any{"channel": "#builds", "text": "*Build failed*\njob job-7 failed"}},
		{"feishu", map[string]any{"msg_type": "text", "content": map[string]any{"text": "Build failed\njob job-7 failed"}}},
	} {
		t.Run(tc.format, func(t *testing.T) {
			p := pdktest.Load(t, wasm(t, "webhook"), pdktest.Options{Kind: "notify", Hosts: []string{"127.0.0.1"},
				Config: map[string]string{"url": srv.URL + "/hook", "format": tc.format, "channel": "#builds"}})
			var resp pdk.SendResponse
			err := p.Call("send", pdk.SendRequest{Title: "Build failed", Body: "job job-7 failed", Severity: pdk.SeverityHigh, Event: event}, &resp)
			if err != nil || resp.Status != pdk.StatusSuccess {
				t.Fatalf("send: %v %v", err, resp)
			}
			var body map[string]any
			if err := json.Unmarshal(srv.last(t).Body, &body); err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.want {
				if fmt.Sprint(body[k]) != fmt.Sprint(v) {
					t.Errorf("%s = %v, want %v (body %v)", k, body[k], v, body)
				}
			}
		})
	}
	// The template model of server rules (pdk.TemplateData), read back
	// from the request's event.
	t.Run("template model", func(t *testing.T) {
		p := pdktest.Load(t, wasm(t, "webhook"), pdktest.Options{Kind: "notify", Hosts: []string{"127.0.0.1"},
			Config: map[string]string{"url": srv.URL + "/hook",
				"template.failed": "# {{.Pipeline}} #{{.Run}} {{.Status}}\njob {{.Job}} step {{.Step}}: {{.Cause}} ({{.Data.who}})\n{{.URL}}"}})
		ev := &pdk.NotifyEvent{Type: "pipeline.failed", PipelineRunID: "run-1", Status: "failed", URL: "https://ci.example.test/runs/run-1",
			Labels: map[string]string{"pipeline": "web", "run": "7", "job": "test", "step": "unit", "cause": "exit status 1"}}
		if err := p.Call("send_template", pdk.SendTemplateRequest{Template: "failed", Data: pdk.Params{"who": "ops"}, Event: ev}, nil); err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.Unmarshal(srv.last(t).Body, &body)
		if body["title"] != "web #7 failed" || body["body"] != "job test step unit: exit status 1 (ops)\nhttps://ci.example.test/runs/run-1" {
			t.Errorf("title %q body %q", body["title"], body["body"])
		}
		err := p.Call("send_template", pdk.SendTemplateRequest{Template: "{{.Pipline}}", Inline: true, Event: ev}, nil)
		var he *host.Error
		if !errors.As(err, &he) || !he.Permanent() || !strings.Contains(err.Error(), "can't evaluate field Pipline") {
			t.Errorf("a template naming no field: %v, want a permanent error naming it", err)
		}
	})
	// The older spelling {{.Event.status}} still renders, with a warning.
	t.Run("dingtalk template", func(t *testing.T) {
		var logs safeBuffer
		p := pdktest.Load(t, wasm(t, "webhook"), pdktest.Options{Kind: "notify", Hosts: []string{"127.0.0.1"}, Logger: newTextLogger(&logs),
			Config: map[string]string{"url": srv.URL + "/robot", "format": "dingtalk",
				"template.job": "# {{.Event.status}}: {{.Data.pipeline}}\nJob {{.Event.job_id}} — [details]({{.Event.url}})"}})
		var resp pdk.SendResponse
		err := p.Call("send_template", pdk.SendTemplateRequest{Template: "job", Data: pdk.Params{"pipeline": "release"}, Event: event}, &resp)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Msgtype  string
			Markdown struct{ Title, Text string }
		}
		_ = json.Unmarshal(srv.last(t).Body, &body)
		if body.Msgtype != "markdown" || body.Markdown.Title != "failed: release" ||
			!strings.Contains(body.Markdown.Text, "Job job-7 — [details](https://arcade.example.com/jobs/job-7)") {
			t.Fatalf("body %s", srv.last(t).Body)
		}
		if out := logs.String(); !strings.Contains(out, "{{.Event.status}} is an older spelling of {{.Status}}") {
			t.Errorf("no warning of the older spelling in the log:\n%s", out)
		}
	})
	t.Run("not granted", func(t *testing.T) {
		p := pdktest.Load(t, wasm(t, "webhook"), pdktest.Options{Kind: "notify",
			Config: map[string]string{"url": srv.URL + "/hook"}})
		err := p.Call("send", pdk.SendRequest{Body: "x"}, nil)
		if !errors.Is(err, host.ErrHostNotGranted) || !strings.Contains(err.Error(), "127.0.0.1") {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("misspelt config", func(t *testing.T) {
		_, err := pdktest.LoadErr(t, wasm(t, "webhook"), pdktest.Options{Kind: "notify", Hosts: []string{"127.0.0.1"},
			Config: map[string]string{"url": srv.URL + "/hook", "chanel": "#builds", "template.job": "x"}})
		if !errors.Is(err, host.ErrBadConfig) || !strings.Contains(err.Error(), "chanel: unknown config key; did you mean channel?") {
			t.Fatalf("load: %v", err)
		}
	})
	// A receiver refusing the request (4xx but 408 and 429) is a permanent
	// error, not retried; a 5xx is worth retrying.
	for code, permanent := range map[int]bool{400: true, 404: true, 429: false, 503: false} {
		t.Run(fmt.Sprintf("answer %d", code), func(t *testing.T) {
			rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }))
			defer rcv.Close()
			p := pdktest.Load(t, wasm(t, "webhook"), pdktest.Options{Kind: "notify", Hosts: []string{"127.0.0.1"},
				Config: map[string]string{"url": rcv.URL + "/hook"}})
			err := p.Call("send", pdk.SendRequest{Body: "x"}, nil)
			var he *host.Error
			if !errors.As(err, &he) || he.Permanent() != permanent || !strings.Contains(err.Error(), fmt.Sprint(code)) {
				t.Fatalf("error = %v, want one naming %d, permanent %v", err, code, permanent)
			}
		})
	}
}

func TestLogNotify(t *testing.T) {
	var buf safeBuffer
	p := pdktest.Load(t, wasm(t, "log-notify"), pdktest.Options{Kind: "notify", Logger: newTextLogger(&buf)})
	if err := p.Call("send", pdk.SendRequest{Channel: "ops", Title: "Deploy failed", Body: "web 1.4.0", Severity: pdk.SeverityHigh}, nil); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.Contains(out, `level=ERROR msg="[ops] Deploy failed: web 1.4.0"`) {
		t.Fatalf("log:\n%s", out)
	}
}

func TestFSStore(t *testing.T) {
	store := t.TempDir()
	p := pdktest.Load(t, wasm(t, "fs-store"), pdktest.Options{Kind: "storage",
		Workspace: map[string]string{"dist/app.tar.gz": "pretend tarball"},
		Paths:     []host.PathGrant{{Host: store, Guest: "/store", Mode: "rw"}}})
	content := []byte("artifact body \x00\x01\x02")
	sum := sha256.Sum256(content)
	var saved pdk.SaveResponse
	if err := p.Call("save", pdk.SaveRequest{Key: "builds/42/report.json", Content: content, Metadata: map[string]string{"job": "42"}}, &saved); err != nil {
		t.Fatal(err)
	}
	o := saved.Object
	if o == nil || o.SHA256 != hex.EncodeToString(sum[:]) || int(o.Size) != len(content) || o.ContentType != "application/json" || o.CreatedAt == nil {
		t.Fatalf("saved %+v", o)
	}
	if b, err := os.ReadFile(filepath.Join(store, "objects/builds/42/report.json")); err != nil || string(b) != string(content) {
		t.Fatalf("on disk: %q %v", b, err)
	}
	var loaded pdk.LoadResponse
	if err := p.Call("load", pdk.LoadRequest{Key: "builds/42/report.json"}, &loaded); err != nil {
		t.Fatal(err)
	}
	got := sha256.Sum256(loaded.Content)
	if got != sum || loaded.Object.Metadata["job"] != "42" {
		t.Fatalf("loaded %q (sha256 %x) %+v", loaded.Content, got, loaded.Object)
	}
	// From a workspace file, to a workspace file.
	if err := p.Call("save", pdk.SaveRequest{Key: "builds/42/app.tar.gz", SourcePath: "/workspace/dist/app.tar.gz"}, &saved); err != nil {
		t.Fatal(err)
	}
	if err := p.Call("load", pdk.LoadRequest{Key: "builds/42/app.tar.gz", TargetPath: "/workspace/restored/app.tar.gz"}, &loaded); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(p.Workspace, "restored/app.tar.gz")); string(b) != "pretend tarball" {
		t.Fatalf("restored %q", b)
	}
	// Expired objects are gone.
	past := pdk.NewTimestamp(time.Now().Add(-time.Hour))
	if err := p.Call("save", pdk.SaveRequest{Key: "tmp/old", Content: []byte("x"), ExpiresAt: past}, nil); err != nil {
		t.Fatal(err)
	}
	var list pdk.ListResponse
	if err := p.Call("list", pdk.ListRequest{Prefix: "builds/", PageSize: 1}, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Objects) != 1 || list.Objects[0].Key != "builds/42/app.tar.gz" || list.NextPageToken == "" {
		t.Fatalf("page 1: %+v", list)
	}
	token := list.NextPageToken
	list = pdk.ListResponse{}
	if err := p.Call("list", pdk.ListRequest{Prefix: "builds/", PageToken: token}, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Objects) != 1 || list.Objects[0].Key != "builds/42/report.json" || list.NextPageToken != "" {
		t.Fatalf("page 2: %+v", list)
	}
	var gone pdk.LoadResponse
	if err := p.Call("load", pdk.LoadRequest{Key: "tmp/old"}, &gone); err != nil || gone.ErrorCode != pdk.StorageNotFound ||
		len(gone.Messages) == 0 || !strings.Contains(gone.Messages[0].Text, "no object tmp/old") {
		t.Fatalf("expired: %v %+v", err, gone)
	}
	var del pdk.DeleteResponse
	if err := p.Call("delete", pdk.DeleteRequest{Key: "builds/42/report.json"}, &del); err != nil || !del.Deleted {
		t.Fatalf("delete: %v %+v", err, del)
	}
	if err := p.Call("load", pdk.LoadRequest{Key: "../etc/passwd"}, nil); err == nil || !strings.Contains(err.Error(), "invalid key") {
		t.Fatalf("escaping key: %v", err)
	}
	// A path outside the grants.
	err := p.Call("save", pdk.SaveRequest{Key: "k", SourcePath: "/etc/passwd"}, nil)
	if !errors.Is(err, host.ErrPathNotGranted) {
		t.Fatalf("ungranted source: %v", err)
	}
	t.Logf("ungranted source: %v", err)
}

func TestSemver(t *testing.T) {
	p := pdktest.Load(t, wasm(t, "semver"), pdktest.Options{Kind: "custom",
		Workspace: map[string]string{"commits.txt": "fix(api): handle empty body\n---\nfeat: add dark mode\n\nCloses #12\n---\nchore: bump deps\n"}})
	cases := []struct {
		current string
		commits []any
		next    string
		bump    string
	}{
		{"v1.4.2", []any{"fix: typo", "docs: readme"}, "v1.4.3", "patch"},
		{"v1.4.2", []any{"feat(ui): new page", "fix: typo"}, "v1.5.0", "minor"},
		{"1.4.2", []any{"refactor!: drop v1 API"}, "2.0.0", "major"},
		{"1.4.2", []any{"feat: x\n\nBREAKING CHANGE: config renamed"}, "2.0.0", "major"},
		{"0.3.1", []any{"feat!: rework"}, "0.4.0", "major"},
		{"1.0.0", []any{"chore: ci"}, "1.0.0", "none"},
	}
	for _, c := range cases {
		var resp pdk.ExecuteResponse
		if err := p.Call("execute", pdk.ExecuteRequest{Action: "bump", Params: pdk.Params{"current": c.current, "commits": c.commits}}, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Result["next"] != c.next || resp.Result["bump"] != c.bump {
			t.Errorf("%s + %v: got %v %v, want %s %s", c.current, c.commits, resp.Result["next"], resp.Result["bump"], c.next, c.bump)
		}
	}
	var resp pdk.ExecuteResponse
	if err := p.Call("execute", pdk.ExecuteRequest{Action: "changelog", Context: ws("/workspace"),
		Params: pdk.Params{"current": "v2.0.0", "commits_file": "commits.txt"}}, &resp); err != nil {
		t.Fatal(err)
	}
	md, _ := resp.Result["markdown"].(string)
	if resp.Result["next"] != "v2.1.0" || !strings.Contains(md, "### Features\n\n- add dark mode") ||
		!strings.Contains(md, "### Fixes\n\n- **api:** handle empty body") || !strings.Contains(md, "### Other\n\n- bump deps") {
		t.Fatalf("changelog %v:\n%s", resp.Result["next"], md)
	}
	if err := p.Call("execute", pdk.ExecuteRequest{Action: "bump", Params: pdk.Params{"current": "one"}}, nil); err == nil ||
		!strings.Contains(err.Error(), `semver: "one" is not a semantic version`) {
		t.Fatalf("bad version: %v", err)
	}
	// next with an explicit bump, as the README calls it.
	for bump, want := range map[string]string{"minor": "v1.5.0", "major": "v2.0.0", "patch": "v1.4.3"} {
		var resp pdk.ExecuteResponse
		if err := p.Call("execute", pdk.ExecuteRequest{Action: "next", Params: pdk.Params{"current": "v1.4.2", "bump": bump}}, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Result["next"] != want || resp.Result["bump"] != bump {
			t.Errorf("next, bump %s: %v", bump, resp.Result)
		}
	}
	for _, bad := range []struct {
		req  pdk.ExecuteRequest
		want string
	}{
		{pdk.ExecuteRequest{Action: "nxt"}, "unknown action nxt (want next, bump or changelog)"},
		{pdk.ExecuteRequest{Action: "next", Params: pdk.Params{"bmup": "minor"}}, `unknown param "bmup"`},
		{pdk.ExecuteRequest{Action: "next", Params: pdk.Params{"bump": "huge"}}, `bump "huge": want major, minor or patch`},
	} {
		if err := p.Call("execute", bad.req, nil); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: %v, want %q", bad.req, err, bad.want)
		}
	}
}

// TestForgeStatus: each forge's status API, path and credential header,
// its spelling of the states, a token from the server winning over the
// config's, and a host not granted refused.
func TestForgeStatus(t *testing.T) {
	srv := newServer(t, `{"id":1}`)
	meta := func(state string) map[string]string {
		return map[string]string{"repository": "https://git.example.com/acme/web.git", "commit": "0123456789abcdef0123456789abcdef01234567",
			"state": state, "context": "arcade/web", "target_url": "https://ci.example.com/runs/r1", "description": "run #1", "token": "tok"}
	}
	for _, tc := range []struct {
		forge, state, path, auth, want string
	}{
		{"github", "running", "/repos/acme/web/statuses/0123456789abcdef0123456789abcdef01234567", "Bearer tok", "pending"},
		{"github", "cancelled", "/repos/acme/web/statuses/0123456789abcdef0123456789abcdef01234567", "Bearer tok", "error"},
		{"gitea", "failure", "/repos/acme/web/statuses/0123456789abcdef0123456789abcdef01234567", "token tok", "failure"},
		{"gitlab", "running", "/projects/acme%2Fweb/statuses/0123456789abcdef0123456789abcdef01234567", "", "running"},
		{"gitlab", "failure", "/projects/acme%2Fweb/statuses/0123456789abcdef0123456789abcdef01234567", "", "failed"},
	} {
		p := pdktest.Load(t, wasm(t, "forge-status"), pdktest.Options{Kind: "notify", Hosts: []string{"127.0.0.1"},
			Config: map[string]string{"forge": tc.forge, "api_url": srv.URL, "token": "config-token"}})
		var resp pdk.SendResponse
		if err := p.Call("send", pdk.SendRequest{Metadata: meta(tc.state)}, &resp); err != nil || resp.Status != pdk.StatusSuccess {
			t.Fatalf("%s %s: %v %v", tc.forge, tc.state, err, resp)
		}
		got := srv.last(t)
		var body map[string]string
		json.Unmarshal(got.Body, &body)
		if got.Method != "POST" || got.Path != tc.path || got.Auth != tc.auth || body["state"] != tc.want || body["target_url"] != "https://ci.example.com/runs/r1" {
			t.Errorf("%s %s: %s %s auth %q body %s", tc.forge, tc.state, got.Method, got.Path, got.Auth, got.Body)
		}
	}
	// Without a token from the server, the config's is used; with neither,
	// a clear error.
	p := pdktest.Load(t, wasm(t, "forge-status"), pdktest.Options{Kind: "notify", Hosts: []string{"127.0.0.1"},
		Config: map[string]string{"forge": "github", "api_url": srv.URL, "token": "config-token"}})
	m := meta("success")
	delete(m, "token")
	if err := p.Call("send", pdk.SendRequest{Metadata: m}, nil); err != nil || srv.last(t).Auth != "Bearer config-token" {
		t.Fatalf("config token: %v %q", err, srv.last(t).Auth)
	}
	p = pdktest.Load(t, wasm(t, "forge-status"), pdktest.Options{Kind: "notify", Hosts: []string{"127.0.0.1"},
		Config: map[string]string{"forge": "github", "api_url": srv.URL}})
	if err := p.Call("send", pdk.SendRequest{Metadata: m}, nil); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Fatalf("no token: %v", err)
	}
	// Granted only the forge's host: another is refused.
	p = pdktest.Load(t, wasm(t, "forge-status"), pdktest.Options{Kind: "notify", Hosts: []string{"api.github.com"},
		Config: map[string]string{"forge": "github", "api_url": srv.URL}})
	if err := p.Call("send", pdk.SendRequest{Metadata: meta("success")}, nil); !errors.Is(err, host.ErrHostNotGranted) {
		t.Fatalf("host not granted: %v", err)
	}
}
