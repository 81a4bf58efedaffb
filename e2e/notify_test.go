package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// receiver is a webhook endpoint on 127.0.0.1 that answers 503 to its first
// failures requests, holds requests while hang is set, and keeps the
// bodies it accepted.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	failures int
	requests int
	bodies   []map[string]any
	hang     chan struct{} // nil: answer at once
}

func newReceiver(t *testing.T, failures int, hang bool) *receiver {
	r := &receiver{failures: failures}
	if hang {
		r.hang = make(chan struct{})
	}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.requests++
		n := r.requests
		r.mu.Unlock()
		if r.hang != nil {
			select {
			case <-r.hang:
			case <-req.Context().Done():
			}
			return
		}
		if n <= r.failures {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		var body map[string]any
		_ = json.Unmarshal(b, &body)
		r.mu.Lock()
		r.bodies = append(r.bodies, body)
		r.mu.Unlock()
		w.Write([]byte(`{"id":"m-1"}`))
	}))
	t.Cleanup(func() {
		if r.hang != nil {
			close(r.hang)
		}
		r.Close()
	})
	return r
}

func (r *receiver) received() ([]map[string]any, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.bodies...), r.requests
}

// eventLog collects the events of a StreamEvents subscription.
type eventLog struct {
	mu     sync.Mutex
	events []*jobv1.Event
}

func (c *cluster) followEvents(resourceType string) *eventLog {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c.t.Cleanup(cancel)
	stream, err := jobv1.NewStreamServiceClient(c.conn).StreamEvents(ctx, &jobv1.StreamEventsRequest{ResourceType: resourceType})
	if err != nil {
		c.t.Fatal(err)
	}
	l := &eventLog{}
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			l.mu.Lock()
			l.events = append(l.events, resp.GetEvent())
			l.mu.Unlock()
		}
	}()
	return l
}

// outcomes returns "event#attempt" of a rule's notification events.
func (l *eventLog) outcomes(rule string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.events {
		if e.GetResourceId() == rule {
			out = append(out, e.GetAttributes()["event"]+"#"+e.GetAttributes()["attempt"])
		}
	}
	return out
}

func (l *eventLog) find(rule, event string) *jobv1.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e.GetResourceId() == rule && e.GetAttributes()["event"] == event {
			return e
		}
	}
	return nil
}

// TestNotificationsAuditAndCustomPlugins runs a server with notify rules,
// the audit gate and a custom plugin, all real plugins built from source:
// a failed run is notified with the rendered body, a flaky receiver gets it
// on the third attempt with every attempt shown as an event, a receiver
// that hangs does not hold up a pipeline, the audit refuses a definition
// with a secret, and a custom plugin answers `arcade plugin call` to a
// write token and refuses a read one.
func TestNotificationsAuditAndCustomPlugins(t *testing.T) {
	dir := t.TempDir()
	webhook := filepath.Join(dir, "webhook.wasm")
	buildPlugin(t, "../plugins/webhook", webhook)
	scan := filepath.Join(dir, "secret-scan.wasm")
	buildPlugin(t, "../plugins/secret-scan", scan)
	greeter := filepath.Join(dir, "greeter.wasm")
	buildPlugin(t, "./testdata/plugins/greeter", greeter)
	ok, flaky, hanging := newReceiver(t, 0, false), newReceiver(t, 2, false), newReceiver(t, 0, true)

	hook := func(name, url, timeout string) string {
		return fmt.Sprintf(`
  - name: %s
    path: %s
    kind: notify
    failure_policy: fail_open
    config: {url: "%s/hook", format: generic}
    grants: {allowed_hosts: [127.0.0.1], timeout: %s, memory_limit_mib: 32, max_instances: 2}`, name, webhook, url, timeout)
	}
	plugins := "plugins:" + hook("webhook-ok", ok.URL, "10s") + hook("webhook-flaky", flaky.URL, "10s") + hook("webhook-hang", hanging.URL, "5s") +
		fmt.Sprintf(`
  - name: secret-scan
    path: %s
    kind: security
    grants: {timeout: 30s, memory_limit_mib: 128, max_instances: 2}
  - name: greeter
    path: %s
    kind: custom
    grants: {timeout: 10s, memory_limit_mib: 32, max_instances: 1}
`, scan, greeter)
	pluginsPath := filepath.Join(dir, "plugins.yaml")
	if err := os.WriteFile(pluginsPath, []byte(plugins), 0o644); err != nil {
		t.Fatal(err)
	}
	serverYAML := `
notify:
  - name: failures
    on: [pipeline.failed]
    plugin: webhook-ok
    pipelines: [breaks]
    template: "{{.Pipeline}} run #{{.Run}} {{.Status}}: job {{.Job}} step {{.Step}}: {{.Cause}}\n{{.URL}}"
  - name: flaky
    on: [pipeline.failed]
    plugin: webhook-flaky
    pipelines: [breaks]
    template: "# {{.Pipeline}} failed\n{{.Pipeline}} run #{{.Run}} {{.Status}}"
  - name: slow
    on: [job.succeeded]
    plugin: webhook-hang
    pipelines: [slow]
notify_delivery: {attempts: 3, backoff: 100ms, max_backoff: 400ms, timeout: 1s, workers: 4}
public_url: https://ci.example.test/
audit: {plugin: secret-scan}
api_tokens:
  - {token: reader-token, scope: read}
  - {token: writer-token, scope: write}
`
	cfgPath := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(cfgPath, []byte(serverYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, "sqlite://"+filepath.Join(dir, "arcade.db"), "--config", cfgPath, "--plugins-config", pluginsPath)
	c.startAgent("worker", 2)
	events := c.followEvents("notification")
	ctx := context.Background()

	// The audit gate: a definition with a key in its env or commands is
	// refused with the finding and not stored; a clean one goes through.
	for name, def := range map[string]string{
		"leaky-env": "name: leaky-env\nenv:\n  AWS_ACCESS_KEY_ID: AKIAABCDEFGHIJKLMNOP\nstages:\n  - name: s\n    jobs:\n      - {name: j, commands: [\"true\"]}\n",
		"leaky-cmd": "name: leaky-cmd\nstages:\n  - name: s\n    jobs:\n      - {name: j, commands: [\"git clone https://ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/x/y\"]}\n",
	} {
		_, err := c.jobs.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: def})
		rule := map[string]string{"leaky-env": "aws-access-key-id", "leaky-cmd": "github-token"}[name]
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), rule) || !strings.Contains(err.Error(), "pipeline "+name+":") {
			t.Errorf("%s: CreatePipeline: %v, want FailedPrecondition naming %s and where", name, err, rule)
		} else if st, _ := status.FromError(err); len(st.Details()) != 1 || st.Details()[0].(*errdetails.PreconditionFailure).GetViolations()[0].GetType() != rule {
			t.Errorf("%s: details %v, want a PreconditionFailure for %s", name, st.Details(), rule)
		}
		if _, err := c.jobs.GetPipeline(ctx, &jobv1.GetPipelineRequest{PipelineId: name}); status.Code(err) != codes.NotFound {
			t.Errorf("%s was stored: %v", name, err)
		}
	}
	c.createPipeline("name: breaks\nstages:\n  - name: build\n    jobs:\n      - name: build\n        steps:\n          - {name: prepare, run: \"echo preparing\"}\n          - {name: compile, run: \"echo building; exit 3\"}\n")
	c.createPipeline("name: slow\nstages:\n  - name: one\n    jobs:\n      - {name: first, commands: [\"echo one\"]}\n  - name: two\n    jobs:\n      - {name: second, commands: [\"echo two\"]}\n")
	_, err := c.jobs.UpdatePipeline(ctx, &jobv1.UpdatePipelineRequest{
		Yaml: "name: breaks\nenv:\n  TOKEN: glpat-abcdefghij0123456789\nstages:\n  - name: build\n    jobs:\n      - {name: build, commands: [\"exit 3\"]}\n"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "gitlab-token") {
		t.Errorf("UpdatePipeline with a token: %v, want FailedPrecondition naming gitlab-token", err)
	}
	if p, err := c.jobs.GetPipeline(ctx, &jobv1.GetPipelineRequest{PipelineId: "breaks"}); err != nil || len(p.GetPipeline().GetEnv()) != 0 {
		t.Errorf("the refused update changed the pipeline: %v %v", p, err)
	}

	// A failed run is notified, with the body rendered from the template:
	// the failed job, step and cause, and the run's page under public_url.
	r := c.waitRun(c.trigger("breaks", nil).GetId())
	if r.GetStatus() != failed {
		t.Fatalf("run is %v, want failed", r.GetStatus())
	}
	c.waitFor("the failure notification", func() bool { b, _ := ok.received(); return len(b) == 1 })
	bodies, _ := ok.received()
	runURL := "https://ci.example.test/runs/" + r.GetId()
	if want := fmt.Sprintf("breaks run #%d failed: job build step compile: exit status 3\n%s", r.GetNumber(), runURL); bodies[0]["body"] != want {
		t.Errorf("webhook body %q, want %q", bodies[0]["body"], want)
	}
	if ev, _ := bodies[0]["event"].(map[string]any); ev["type"] != "pipeline.failed" || ev["pipelineRunId"] != r.GetId() || ev["status"] != "failed" || ev["url"] != runURL {
		t.Errorf("webhook event %v", bodies[0]["event"])
	} else if labels, _ := ev["labels"].(map[string]any); labels["job"] != "build" || labels["step"] != "compile" || labels["cause"] != "exit status 3" {
		t.Errorf("webhook event labels %v", ev["labels"])
	}

	// The flaky receiver gets it on the third attempt; the events show the
	// two failed attempts, then the delivery.
	c.waitFor("the flaky delivery", func() bool { return events.find("flaky", "notification.delivered") != nil })
	if got := strings.Join(events.outcomes("flaky"), " "); got != "notification.failed#1 notification.failed#2 notification.delivered#3" {
		t.Errorf("flaky rule events: %s", got)
	}
	if e := events.find("flaky", "notification.failed"); !strings.Contains(e.GetAttributes()["error"], "503") || e.GetAttributes()["plugin"] != "webhook-flaky" {
		t.Errorf("failed attempt event: %v", e)
	}
	if bodies, requests := flaky.received(); len(bodies) != 1 || requests != 3 || bodies[0]["title"] != "breaks failed" || bodies[0]["body"] != fmt.Sprintf("breaks run #%d failed", r.GetNumber()) {
		t.Errorf("flaky receiver: %d requests, bodies %v", requests, bodies)
	}

	// A receiver that hangs holds up nothing: the run finishes, and each
	// delivery times out and is reported.
	r = c.waitRun(c.trigger("slow", nil).GetId())
	if r.GetStatus() != success {
		t.Fatalf("slow run is %v, want success", r.GetStatus())
	}
	c.waitFor("the hanging deliveries to give up", func() bool {
		n := 0
		for _, o := range events.outcomes("slow") {
			if o == "notification.failed#3" {
				n++
			}
		}
		return n == 2 // one per job
	})
	if e := events.find("slow", "notification.failed"); !strings.Contains(e.GetAttributes()["error"], "timed out") {
		t.Errorf("hanging delivery event: %v", e)
	}
	if recs := c.server.grepLog("notification failed; no attempts left"); len(recs) < 2 || recs[0]["rule"] != "slow" {
		t.Errorf("server log of the given-up deliveries: %v", recs)
	}

	// `arcade events` shows the outcomes by name, from the history.
	out := cliUntil(t, c, "notification.delivered", "events", "--since", "10m", "--resource", "notification/failures")
	if !strings.Contains(out, "notification.delivered") || !strings.Contains(out, "notification/failures") || !strings.Contains(out, "plugin=webhook-ok") {
		t.Errorf("arcade events:\n%s", out)
	}

	// A custom plugin over the API: a write token may call it, a read one
	// may not.
	cli := func(token string, args ...string) (string, error) {
		cmd := exec.Command(arcadeBin, args...)
		cmd.Env = append(os.Environ(), "ARCADE_SERVER="+c.addr, "ARCADE_API_TOKEN="+token)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	got, err := cli("writer-token", "plugin", "call", "greeter", "execute", "--action", "greet", "--param", "name=arcade", "--params", `{"greeting":"hi"}`)
	if err != nil || !strings.Contains(got, `"greeting": "hi, arcade"`) || !strings.Contains(got, "STATUS_SUCCESS") {
		t.Errorf("arcade plugin call --action greet: %v\n%s", err, got)
	}
	if got, err := cli("writer-token", "plugin", "call", "greeter", "execute", "--action", "fail"); err == nil || !strings.Contains(got, "asked to fail") {
		t.Errorf("a failing action: %v\n%s", err, got)
	}
	if got, err := cli("reader-token", "plugin", "call", "greeter", "execute", "--action", "greet"); err == nil || !strings.Contains(got, "a read token may not call CallPlugin (needs write)") || strings.Contains(got, "rpc error") {
		t.Errorf("read token calling a plugin: %v\n%s", err, got)
	}
}

// lockedBuffer is a bytes buffer written by a process and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
