package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	secretv1 "github.com/go-arcade/arcade/api/secret/v1"
	"github.com/go-arcade/arcade/client"
	"github.com/go-arcade/arcade/internal/pgtest"
	"github.com/go-arcade/arcade/server/trigger"
)

// cliIn is cli with stdin.
func (c *cluster) cliIn(stdin string, args ...string) (string, error) {
	cmd := exec.Command(arcadeBin, args...)
	cmd.Env = append(os.Environ(), "ARCADE_SERVER="+c.addr, "ARCADE_API_TOKEN="+apiToken)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func randomValue(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// eventTexts collects every event a server streams, as JSON.
type eventTexts struct {
	mu  sync.Mutex
	all []string
}

func (c *cluster) watchEvents(t *testing.T) *eventTexts {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := jobv1.NewStreamServiceClient(c.conn).StreamEvents(ctx, &jobv1.StreamEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	l := &eventTexts{}
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			b, _ := protojson.Marshal(resp)
			l.mu.Lock()
			l.all = append(l.all, string(b))
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *eventTexts) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n")
}

// runPipeline triggers a run and waits for its end.
func (c *cluster) runPipeline(t *testing.T, name string, params map[string]string) *jobv1.PipelineRun {
	t.Helper()
	resp, err := c.jobs.TriggerPipeline(context.Background(), &jobv1.TriggerPipelineRequest{PipelineId: name, Params: params})
	if err != nil {
		t.Fatalf("trigger %s: %v", name, err)
	}
	var run *jobv1.PipelineRun
	c.waitFor("run of "+name+" to end", func() bool {
		r, err := c.jobs.GetPipelineRun(context.Background(), &jobv1.GetPipelineRunRequest{RunId: resp.GetRun().GetId()})
		if err != nil {
			t.Fatal(err)
		}
		run = r.GetRun()
		switch run.GetStatus() {
		case success, failed, cancelled:
			return true
		}
		return false
	})
	return run
}

// grepTree reports the files under dir that hold any of values.
func grepTree(t *testing.T, dir string, values ...string) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file gone meanwhile (a WAL segment recycled)
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		for _, v := range values {
			if bytes.Contains(b, []byte(v)) {
				hits = append(hits, path+" holds "+v)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// TestStoredSecrets: secrets set through the CLI (stdin and a file) reach
// a pipeline's job as env, masked in its log; rotating a value and
// re-keying the database (arcade server rekey, the server running) keep
// jobs working; a deleted secret is refused when a pipeline references it
// and fails the next run of one that did, saying why; and no plain value is
// in any API answer, event, log, CLI output or database file — the SQLite
// file and PostgreSQL's data directory, write-ahead log included.
func TestStoredSecrets(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		c := newCluster(t, dsn)
		c.startAgent("keeper", 1)
		events := c.watchEvents(t)
		ctx := context.Background()
		key1, key2, pw := randomValue("deploykey1"), randomValue("deploykey2"), randomValue("registrypw")
		values := []string{key1, key2, pw}
		var outputs []string
		cli := func(stdin string, args ...string) string {
			t.Helper()
			out, err := c.cliIn(stdin, args...)
			outputs = append(outputs, out)
			if err != nil {
				t.Fatalf("arcade %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			return out
		}

		// Values come from stdin or a file, never from the command line.
		if out, err := c.cliIn("", "secret", "set", "DEPLOY_KEY", key1); err == nil {
			t.Fatalf("a value on the command line was taken:\n%s", out)
		}
		if out := cli(key1+"\n", "secret", "set", "DEPLOY_KEY", "--description", "deploy key"); !strings.Contains(out, "secret DEPLOY_KEY (global) set, version 1") {
			t.Errorf("secret set said:\n%s", out)
		}
		pwFile := filepath.Join(t.TempDir(), "registry.pass")
		if err := os.WriteFile(pwFile, []byte(pw), 0o600); err != nil {
			t.Fatal(err)
		}
		cli("", "secret", "set", "REGISTRY_PASSWORD", "--pipeline", "ship", "--from-file", pwFile)

		spec := filepath.Join(t.TempDir(), "ship.arcade.yaml")
		check := `[ "$(printf %s "$DEPLOY_KEY" | sha256sum | cut -d' ' -f1)" = "$WANT_KEY" ] && [ "$(printf %s "$REGISTRY_PASSWORD" | sha256sum | cut -d' ' -f1)" = "$WANT_PW" ]`
		yaml := "name: ship\nsecrets: [DEPLOY_KEY]\nstages:\n  - name: deploy\n    jobs:\n      - name: use\n        secrets: [REGISTRY_PASSWORD]\n" +
			"        commands:\n          - 'echo \"key $DEPLOY_KEY pw $REGISTRY_PASSWORD\"'\n          - '" + strings.ReplaceAll(check, "'", "''") + "'\n"
		if err := os.WriteFile(spec, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		if out := cli("", "pipeline", "create", "-f", spec); !strings.Contains(out, "stored secrets: DEPLOY_KEY") {
			t.Errorf("pipeline create said:\n%s", out)
		}
		want := func(key string) map[string]string {
			return map[string]string{"WANT_KEY": sha256Hex(key), "WANT_PW": sha256Hex(pw)}
		}
		runOK := func(what string, key string) *jobv1.PipelineRun {
			t.Helper()
			run := c.runPipeline(t, "ship", want(key))
			if run.GetStatus() != success {
				t.Fatalf("%s: run %v (%s), job %q", what, run.GetStatus(), run.GetMessage(), run.GetJobs()[0].GetMessage())
			}
			var log []string
			for _, l := range c.logOf(run.GetJobs()[0].GetId(), 0) {
				log = append(log, l.GetContent())
			}
			if all := strings.Join(log, "\n"); !strings.Contains(all, "key *** pw ***") {
				t.Errorf("%s: the log does not show the secrets masked:\n%s", what, all)
			}
			return run
		}
		runOK("first run", key1)

		// Rotation: the next job gets the new value.
		if out := cli(key2, "secret", "set", "DEPLOY_KEY"); !strings.Contains(out, "version 2") {
			t.Errorf("rotation said:\n%s", out)
		}
		runOK("after rotation", key2)

		// Re-keying while the server runs.
		before := c.secretKeys(t)
		out := cli("", "server", "rekey", "--db", dsn, "--data-dir", c.dataDir, "--config", os.DevNull, "--wait", "60s")
		if !strings.Contains(out, "re-sealed") {
			t.Errorf("rekey said:\n%s", out)
		}
		after := c.secretKeys(t)
		for name, k := range after {
			if k == before[name] || k == "" {
				t.Errorf("secret %s still under key %q after rekey (was %q):\n%s", name, k, before[name], out)
			}
		}
		runOK("after rekey", key2)

		// Deleted: refused when referenced, and the next run fails saying why.
		cli("", "secret", "rm", "DEPLOY_KEY")
		other := filepath.Join(t.TempDir(), "other.arcade.yaml")
		os.WriteFile(other, []byte("name: other\nsecrets: [DEPLOY_KEY]\nstages: [{name: s, jobs: [{name: j, commands: [true]}]}]\n"), 0o644)
		out, err := c.cli("pipeline", "create", "-f", other)
		if err == nil || !strings.Contains(out, "secret_refs[0]") || !strings.Contains(out, "DEPLOY_KEY") {
			t.Errorf("a pipeline referencing a deleted secret: %v\n%s", err, out)
		}
		run := c.runPipeline(t, "ship", want(key2))
		if run.GetStatus() != failed || !strings.Contains(run.GetMessage(), "DEPLOY_KEY") {
			t.Errorf("run after the deletion: %v %q", run.GetStatus(), run.GetMessage())
		}

		// Nowhere in plain: API answers, events, logs, CLI output, files.
		var answers []proto.Message
		for _, call := range []func() (proto.Message, error){
			func() (proto.Message, error) {
				return secretv1.NewSecretServiceClient(c.conn).ListSecrets(ctx, &secretv1.ListSecretsRequest{})
			},
			func() (proto.Message, error) {
				return secretv1.NewSecretServiceClient(c.conn).GetSecret(ctx, &secretv1.GetSecretRequest{Name: "REGISTRY_PASSWORD",
					Scope: secretv1.SecretScope_SECRET_SCOPE_PIPELINE, Target: "ship"})
			},
			func() (proto.Message, error) { return c.jobs.ListJobs(ctx, &jobv1.ListJobsRequest{PageSize: 100}) },
			func() (proto.Message, error) { return c.jobs.ListPipelines(ctx, &jobv1.ListPipelinesRequest{}) },
			func() (proto.Message, error) {
				return c.jobs.ListPipelineRuns(ctx, &jobv1.ListPipelineRunsRequest{PipelineId: "ship"})
			},
			func() (proto.Message, error) {
				return secretv1.NewAuditServiceClient(c.conn).ListAuditEvents(ctx, &secretv1.ListAuditEventsRequest{})
			},
		} {
			m, err := call()
			if err != nil {
				t.Fatal(err)
			}
			answers = append(answers, m)
		}
		var seen strings.Builder
		for _, m := range answers {
			b, _ := protojson.Marshal(m)
			seen.Write(b)
		}
		if !strings.Contains(seen.String(), "REGISTRY_PASSWORD") || !strings.Contains(seen.String(), "SecretService/CreateSecret") {
			t.Errorf("the answers miss what they should hold (names, audit entries)")
		}
		for _, logs := range []string{c.server.logPath, c.agents["keeper"].logPath} {
			b, _ := os.ReadFile(logs)
			seen.Write(b)
		}
		seen.WriteString(events.text())
		seen.WriteString(strings.Join(outputs, "\n"))
		for _, v := range values {
			if strings.Contains(seen.String(), v) {
				t.Errorf("%s is in an API answer, event, log or CLI output", v)
			}
		}
		dirs := []string{c.dataDir}
		if strings.HasPrefix(dsn, "sqlite://") {
			dirs = append(dirs, filepath.Dir(strings.TrimPrefix(dsn, "sqlite://")))
		} else {
			dirs = append(dirs, pgtest.Dir(t))
		}
		for _, d := range dirs {
			if hits := grepTree(t, d, values...); len(hits) > 0 {
				t.Errorf("plain secret values on disk:\n%s", strings.Join(hits, "\n"))
			}
		}
		// The grep looks where the database keeps what it is given: the
		// secrets' names, stored in plain, are found there.
		if hits := grepTree(t, dirs[1], "REGISTRY_PASSWORD"); len(hits) == 0 {
			t.Errorf("no file under %s holds a secret's name: the grep misses the database's files", dirs[1])
		}
	})
}

// secretKeys maps each stored secret to the key it is sealed under.
func (c *cluster) secretKeys(t *testing.T) map[string]string {
	t.Helper()
	resp, err := secretv1.NewSecretServiceClient(c.conn).ListSecrets(context.Background(), &secretv1.ListSecretsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range resp.GetSecrets() {
		out[s.GetName()+"@"+s.GetTarget()] = s.GetKeyId()
	}
	return out
}

// asToken dials a server with a token.
func (c *cluster) asToken(t *testing.T, token string) *grpc.ClientConn {
	t.Helper()
	conn, err := client.Dial(c.addr, client.Static(token))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestNamedTokens: named tokens created through the CLI act within their
// scope — a read token changes nothing — on every replica; a revoked or an
// expired token is refused at once on every replica (two replicas on one
// PostgreSQL; one server on SQLite), a revoked token's open stream is cut;
// and the audit log holds each write, and each refused one, under the
// token's name.
func TestNamedTokens(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		servers := []*cluster{newCluster(t, dsn)}
		if !strings.HasPrefix(dsn, "sqlite://") {
			servers = append(servers, newCluster(t, dsn))
		}
		a, last := servers[0], servers[len(servers)-1]
		ctx := context.Background()
		mint := func(name, scope string, extra ...string) string {
			t.Helper()
			out, err := exec.Command(arcadeBin, append([]string{"token", "create", name, "--scope", scope, "--owner", "e2e", "--server", a.addr, "--token", apiToken}, extra...)...).Output()
			if err != nil {
				t.Fatalf("token create %s: %v", name, err)
			}
			return strings.TrimSpace(string(out))
		}
		reader, writer := mint("reader", "read"), mint("writer", "write")
		short := mint("short-lived", "write", "--expires-in", "3s")
		if !strings.HasPrefix(writer, "arc_") {
			t.Fatalf("token %q", writer)
		}

		// A read token reads and changes nothing, on every replica.
		for _, srv := range servers {
			conn := srv.asToken(t, reader)
			jobs, secrets := jobv1.NewJobServiceClient(conn), secretv1.NewSecretServiceClient(conn)
			if _, err := jobs.ListJobs(ctx, &jobv1.ListJobsRequest{}); err != nil {
				t.Errorf("reader listing: %v", err)
			}
			writes := map[string]error{}
			_, writes["CreateJob"] = jobs.CreateJob(ctx, &jobv1.CreateJobRequest{Commands: []string{"true"}})
			_, writes["CancelJob"] = jobs.CancelJob(ctx, &jobv1.CancelJobRequest{JobId: "x"})
			_, writes["RetryJob"] = jobs.RetryJob(ctx, &jobv1.RetryJobRequest{JobId: "x"})
			_, writes["DeleteJob"] = jobs.DeleteJob(ctx, &jobv1.DeleteJobRequest{JobId: "x"})
			_, writes["CreatePipeline"] = jobs.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: "name: x"})
			_, writes["TriggerPipeline"] = jobs.TriggerPipeline(ctx, &jobv1.TriggerPipelineRequest{PipelineId: "x"})
			_, writes["StopPipeline"] = jobs.StopPipeline(ctx, &jobv1.StopPipelineRequest{RunId: "x"})
			_, writes["DeletePipeline"] = jobs.DeletePipeline(ctx, &jobv1.DeletePipelineRequest{PipelineId: "x"})
			_, writes["CreateSecret"] = secrets.CreateSecret(ctx, &secretv1.CreateSecretRequest{Name: "X", Value: "v"})
			_, writes["CreateToken"] = secretv1.NewTokenServiceClient(conn).CreateToken(ctx, &secretv1.CreateTokenRequest{Name: "y", Scope: secretv1.TokenScope_TOKEN_SCOPE_ADMIN})
			_, writes["RevokeAgent"] = agentv1.NewAgentServiceClient(conn).RevokeAgent(ctx, &agentv1.RevokeAgentRequest{AgentId: "x"})
			_, writes["SetAgentTrust"] = secretv1.NewTrustServiceClient(conn).SetAgentTrust(ctx, &secretv1.SetAgentTrustRequest{AgentId: "x"})
			for m, err := range writes {
				if status.Code(err) != codes.PermissionDenied {
					t.Errorf("read token calling %s on %s: %v, want PermissionDenied", m, srv.addr, err)
				}
			}
		}
		if list, _ := a.jobs.ListJobs(ctx, &jobv1.ListJobsRequest{}); len(list.GetJobs()) != 0 {
			t.Errorf("the read token made %d job(s)", len(list.GetJobs()))
		}

		// The writer writes on every replica, and follows events on the last.
		for _, srv := range servers {
			if _, err := jobv1.NewJobServiceClient(srv.asToken(t, writer)).CreateJob(ctx, &jobv1.CreateJobRequest{Name: "by writer", Commands: []string{"true"}}); err != nil {
				t.Fatalf("writer creating on %s: %v", srv.addr, err)
			}
		}
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := jobv1.NewStreamServiceClient(last.asToken(t, writer)).StreamEvents(sctx, &jobv1.StreamEventsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		streamEnded := make(chan error, 1)
		go func() {
			for {
				if _, err := stream.Recv(); err != nil {
					streamEnded <- err
					return
				}
			}
		}()
		if _, err := jobv1.NewJobServiceClient(last.asToken(t, short)).ListJobs(ctx, &jobv1.ListJobsRequest{}); err != nil {
			t.Errorf("short-lived token before its expiry: %v", err)
		}

		// Revoked on the first replica: refused at once on every one.
		if out, err := a.cli("token", "revoke", "writer"); err != nil {
			t.Fatalf("revoke: %v\n%s", err, out)
		}
		for _, srv := range servers {
			_, err := jobv1.NewJobServiceClient(srv.asToken(t, writer)).ListJobs(ctx, &jobv1.ListJobsRequest{})
			if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "revoked") {
				t.Errorf("revoked token on %s right after the revocation: %v", srv.addr, err)
			}
		}
		select {
		case err := <-streamEnded:
			if c := status.Code(err); c != codes.Canceled && c != codes.Unauthenticated {
				t.Errorf("the revoked token's stream ended with %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("the revoked token's stream on the other replica goes on")
		}

		// Expired: refused on every replica.
		for _, srv := range servers {
			conn := srv.asToken(t, short)
			srv.waitFor("the short-lived token to expire", func() bool {
				_, err := jobv1.NewJobServiceClient(conn).ListJobs(ctx, &jobv1.ListJobsRequest{})
				return status.Code(err) == codes.Unauthenticated && strings.Contains(err.Error(), "expired")
			})
		}
		if out := a.mustCLI(t, "token", "list", "--all"); !strings.Contains(out, "revoked by api_token") || !strings.Contains(out, "expired") {
			t.Errorf("token list --all:\n%s", out)
		}

		// The audit log, read on the last replica: each write under the
		// token's name, the read token's refusals, the revocation.
		out := last.mustCLI(t, "audit", "-o", "json")
		var log secretv1.ListAuditEventsResponse
		if err := protojson.Unmarshal([]byte(out), &log); err != nil {
			t.Fatalf("audit -o json: %v\n%s", err, out)
		}
		count := map[string]int{}
		for _, e := range log.GetEvents() {
			count[e.GetActor()+" "+shortName(e.GetMethod())+" "+e.GetOutcome()]++
			if e.GetActor() == "writer" && shortName(e.GetMethod()) == "CreateJob" && !strings.Contains(e.GetResource(), "job.id=") {
				t.Errorf("entry without the job's id: %v", e)
			}
			if e.GetPeer() == "" || e.GetTime() == nil {
				t.Errorf("entry without peer or time: %v", e)
			}
		}
		want := map[string]int{
			"writer CreateJob OK":                   len(servers),
			"reader CreateJob PERMISSION_DENIED":    len(servers),
			"reader CreateSecret PERMISSION_DENIED": len(servers),
			"api_token RevokeToken OK":              1,
			"api_token CreateToken OK":              3,
		}
		for k, n := range want {
			if count[k] != n {
				t.Errorf("audit log: %d × %q, want %d (all: %v)", count[k], k, n, count)
			}
		}
		for k := range count {
			if strings.Contains(k, "ListJobs") {
				t.Errorf("a read is in the audit log: %s", k)
			}
		}
	})
}

func shortName(method string) string {
	_, name, _ := strings.Cut(method, "/")
	return name
}

// TestTrustedAgents: an agent with a trusted label runs only jobs that may
// use trusted agents, whatever their selectors say: not a job a write
// token created (even with no selector, the trusted agent idle), not a run
// of a pipeline not allowed on trusted agents (its selector naming the
// trusted pool), not a run of a branch the pipeline is not allowed for;
// while an admin's job and a run of an allowed branch do run there, after
// the others in the queue. arcade job why says it is trust that keeps a
// job off the agent.
func TestTrustedAgents(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		c, hookURL := newPipelineCluster(t, dsn)
		ctx := context.Background()
		// An agent's own labels never make it trusted: anyone with the
		// registration token could claim them. The admin's do, and they
		// outlive its restarts.
		deployDir := t.TempDir() // kept across its restart: its identity lives there
		c.startAgentWith("deploy-1", 1, []string{"--work-dir", deployDir}, "pool=deploy")
		if out := c.mustCLI(t, "trust", "labels", "pool=deploy"); strings.Contains(out, "deploy-1") {
			t.Fatalf("an agent labelled by itself became trusted; trust labels said:\n%s", out)
		}
		if a := c.agent("deploy-1"); a.GetTrusted() {
			t.Fatalf("deploy-1 trusted by its own label (%s)", a.GetTrustedBecause())
		}
		if out := c.mustCLI(t, "agent", "label", "deploy-1", "pool=deploy"); !strings.Contains(out, "pool=deploy") {
			t.Fatalf("agent label said:\n%s", out)
		}
		if a := c.agent("deploy-1"); !a.GetTrusted() || !strings.Contains(a.GetTrustedBecause(), "label") {
			t.Fatalf("deploy-1 labelled by an admin: trusted %v (%s)", a.GetTrusted(), a.GetTrustedBecause())
		}
		c.agents["deploy-1"].stop(syscall.SIGTERM)
		c.startAgentWith("deploy-1", 1, []string{"--work-dir", deployDir})
		if a := c.agent("deploy-1"); !a.GetTrusted() || a.GetLabels()["pool"] != "deploy" {
			t.Fatalf("deploy-1 restarted without the label: trusted %v, labels %v", a.GetTrusted(), a.GetLabels())
		}
		out, err := exec.Command(arcadeBin, "token", "create", "dev", "--scope", "write", "--server", c.addr, "--token", apiToken).Output()
		if err != nil {
			t.Fatal(err)
		}
		dev := jobv1.NewJobServiceClient(c.asToken(t, strings.TrimSpace(string(out))))
		create := func(jobs jobv1.JobServiceClient, name, selector string) string {
			t.Helper()
			resp, err := jobs.CreateJob(ctx, &jobv1.CreateJobRequest{Name: name, Commands: []string{"true"}, Selector: selector})
			if err != nil {
				t.Fatal(err)
			}
			return resp.GetJob().GetId()
		}
		anywhere := create(dev, "dev, no selector", "")
		targeted := create(dev, "dev, aimed at the pool", "pool=deploy")

		c.createPipeline(`name: ship
triggers: [{type: webhook, secret: hush}]
stages: [{name: s, jobs: [{name: deploy, selector: "pool=deploy", commands: ["true"]}]}]`)
		push := func(branch string) *jobv1.PipelineRun {
			t.Helper()
			before := len(c.runs("ship"))
			payload := []byte(`{"ref":"refs/heads/` + branch + `","after":"0123456789abcdef","repository":{"full_name":"org/app","clone_url":"https://git.example.com/org/app.git"}}`)
			req, _ := http.NewRequest(http.MethodPost, hookURL+"/hooks/ship", bytes.NewReader(payload))
			req.Header.Set(trigger.SignatureHeader, trigger.Sign("hush", payload))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			rs := c.runs("ship")
			if resp.StatusCode != http.StatusCreated || len(rs) != before+1 {
				t.Fatalf("push to %s: %d, %d runs", branch, resp.StatusCode, len(rs))
			}
			return rs[0]
		}
		notAllowed := push("main")
		if notAllowed.GetTrustedAgents() || !strings.Contains(notAllowed.GetTrustReason(), "not allowed on trusted agents") {
			t.Errorf("run of a pipeline not allowed: %v %q", notAllowed.GetTrustedAgents(), notAllowed.GetTrustReason())
		}
		if notAllowed.GetSource() != "git.example.com/org/app" || notAllowed.GetBranch() != "main" {
			t.Errorf("run source %q branch %q", notAllowed.GetSource(), notAllowed.GetBranch())
		}

		// An admin's job, queued after all of those, runs on the trusted
		// agent: the agent was free and passed the others over.
		admin := c.create(&jobv1.CreateJobRequest{Name: "admin's", Commands: []string{"true"}, Selector: "pool=deploy"})
		if j := c.waitStatus(admin.GetId(), success, failed); j.GetStatus() != success || j.GetAgentName() != "deploy-1" {
			t.Fatalf("admin's job: %v on %q", j.GetStatus(), j.GetAgentName())
		}
		why := c.mustCLI(t, "job", "why", anywhere)
		if !strings.Contains(why, "deploy-1") || !strings.Contains(why, "trusted agent: this job may not run on trusted agents: created by write token dev") {
			t.Errorf("job why:\n%s", why)
		}
		explain, err := c.jobs.ExplainJob(ctx, &jobv1.ExplainJobRequest{JobId: jobsByName(c.run(notAllowed.GetId()))["deploy"].GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if fit := explain.GetAgents()[0]; !fit.GetTrusted() || !strings.Contains(fit.GetTrustRefused(), "pipeline ship is not allowed") {
			t.Errorf("ExplainJob of the run's job: %v", fit)
		}

		// Allowed for main: a run of another branch stays off, one of main runs.
		c.mustCLI(t, "pipeline", "trust", "ship", "--branch", "main")
		feature := push("feature/x")
		if feature.GetTrustedAgents() || !strings.Contains(feature.GetTrustReason(), "branch feature/x is not one") {
			t.Errorf("feature run: %v %q", feature.GetTrustedAgents(), feature.GetTrustReason())
		}
		mainRun := c.waitRun(push("main").GetId())
		if j := jobsByName(mainRun)["deploy"]; mainRun.GetStatus() != success || j.GetAgentName() != "deploy-1" {
			t.Fatalf("allowed run: %v, job on %q", mainRun.GetStatus(), j.GetAgentName())
		}

		// An agent that is not trusted takes the job with no selector.
		c.startAgent("builder", 1)
		if j := c.waitStatus(anywhere, success, failed); j.GetAgentName() != "builder" {
			t.Errorf("the job with no selector ran on %q", j.GetAgentName())
		}
		for what, id := range map[string]string{
			"job aimed at the pool":           targeted,
			"run of a pipeline not allowed":   jobsByName(c.run(notAllowed.GetId()))["deploy"].GetId(),
			"run of a branch not allowed for": jobsByName(c.run(feature.GetId()))["deploy"].GetId(),
		} {
			if j := c.get(id); j.GetStatus() != pending || j.GetAgentName() != "" {
				t.Errorf("%s: %v on %q, want still pending", what, j.GetStatus(), j.GetAgentName())
			}
		}
	})
}

// TestRekeyAcrossReplicas: two replicas on one PostgreSQL, each with its
// own copy of the keyring file (as on two machines). A rekey run next to
// the first waits for the second to hold the new key and refuses to switch
// without it, naming it; with the file copied over, rekey takes the same
// key up, both replicas seal with it, and jobs on either keep getting the
// secrets.
func TestRekeyAcrossReplicas(t *testing.T) {
	dsn := pgtest.Start(t)
	ringA, ringB := filepath.Join(t.TempDir(), "secret.keyring"), filepath.Join(t.TempDir(), "secret.keyring")
	initial := "# first key\n" + base64Key() + "\n"
	for _, f := range []string{ringA, ringB} {
		if err := os.WriteFile(f, []byte(initial), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a := newCluster(t, dsn, "--secret-keyring", ringA)
	b := newCluster(t, dsn, "--secret-keyring", ringB)
	b.startAgent("on-b", 1)
	value := randomValue("replicated")
	if out, err := a.cliIn(value, "secret", "set", "TOKEN"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	check := func(c *cluster) {
		t.Helper()
		j := c.create(&jobv1.CreateJobRequest{Commands: []string{`[ "$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)" = ` + sha256Hex(value) + ` ]`},
			SecretRefs: []string{"TOKEN"}})
		if got := c.waitStatus(j.GetId(), success, failed); got.GetStatus() != success {
			t.Fatalf("job created on %s: %v (%s)", c.addr, got.GetStatus(), got.GetMessage())
		}
	}
	check(a)
	before := a.secretKeys(t)["TOKEN@"]

	rekey := func() (string, error) {
		return a.cli("server", "rekey", "--db", dsn, "--data-dir", a.dataDir, "--secret-keyring", ringA, "--config", os.DevNull, "--wait", "4s")
	}
	out, err := rekey()
	if err == nil || !strings.Contains(out, "do not hold key") {
		t.Fatalf("rekey with a replica lacking the key: %v\n%s", err, out)
	}
	if got := a.secretKeys(t)["TOKEN@"]; got != before {
		t.Fatalf("the secret moved to key %s while a replica could not open it", got)
	}
	check(b)
	raw, _ := os.ReadFile(ringA)
	if err := os.WriteFile(ringB, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = rekey()
	if err != nil || !strings.Contains(out, "taking up key") || !strings.Contains(out, "re-sealed 1 value(s)") {
		t.Fatalf("rekey: %v\n%s", err, out)
	}
	after := a.secretKeys(t)["TOKEN@"]
	if after == before || !strings.Contains(out, after) {
		t.Errorf("key %s → %s; rekey said:\n%s", before, after, out)
	}
	check(a)
	check(b)
	// A value sealed by the second replica now is under the new key.
	if out, err := b.cliIn(randomValue("fresh"), "secret", "set", "FRESH"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if k := b.secretKeys(t)["FRESH@"]; k != after {
		t.Errorf("replica b sealed under %s, want %s", k, after)
	}
}

func base64Key() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
