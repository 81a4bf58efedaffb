package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	secretv1 "github.com/go-arcade/arcade/api/secret/v1"
	"github.com/go-arcade/arcade/client"
)

// rogue is a client registered as an agent with the shared registration
// token, as anyone holding that token can.
type rogue struct {
	id    string
	agent agentv1.AgentServiceClient
	logs  jobv1.StreamServiceClient
}

func newRogue(t *testing.T, c *cluster, name string) *rogue {
	t.Helper()
	reg, err := client.Dial(c.addr, client.Static(agentToken))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	r, err := agentv1.NewAgentServiceClient(reg).Register(context.Background(), &agentv1.RegisterRequest{
		Name: name, Labels: map[string]string{"pool": "rogue"}, MaxConcurrentJobs: 1})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	conn, err := client.Dial(c.addr, client.Static(r.GetAgentToken()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rogue{id: r.GetAgentId(), agent: agentv1.NewAgentServiceClient(conn), logs: jobv1.NewStreamServiceClient(conn)}
}

// forge tries the three ways of writing log lines: ReportJobLog,
// UploadJobLog and a log batch on the AgentChannel; it returns their codes.
func (r *rogue) forge(t *testing.T, jobID string, attempt int32, from int64, text string) [3]codes.Code {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	chunks := func() []*agentv1.LogChunk {
		var out []*agentv1.LogChunk
		for i := range int64(3) {
			out = append(out, &agentv1.LogChunk{LineNumber: from + i, Content: text})
		}
		return out
	}
	var got [3]codes.Code
	_, err := r.agent.ReportJobLog(ctx, &agentv1.ReportJobLogRequest{AgentId: r.id, JobId: jobID, Attempt: attempt, Chunks: chunks()})
	got[0] = status.Code(err)

	up, err := r.logs.UploadJobLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Send(&jobv1.UploadJobLogRequest{AgentId: r.id, JobId: jobID, Attempt: attempt, Chunks: chunks()}); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	_, err = up.CloseAndRecv()
	got[1] = status.Code(err)

	ch, err := r.logs.AgentChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*jobv1.AgentChannelRequest{
		{Payload: &jobv1.AgentChannelRequest_Hello{Hello: &jobv1.ChannelHello{AgentId: r.id}}},
		{Payload: &jobv1.AgentChannelRequest_Log{Log: &agentv1.ReportJobLogRequest{AgentId: r.id, JobId: jobID, Attempt: attempt, Chunks: chunks()}}},
	} {
		if err := ch.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	for {
		resp, err := ch.Recv()
		if err != nil {
			t.Fatalf("agent channel: %v", err)
		}
		if ack := resp.GetLogAck(); ack != nil {
			got[2] = codes.Code(ack.GetCode())
			break
		}
	}
	return got
}

// TestForgedLogsAreRefused: an agent registered with the shared token
// cannot write into the log of a job leased to another agent, while it runs
// or after it ended, by any of the three ways logs travel; nothing it sent
// is stored and the real agent's log is whole. After its final report the
// lease holder may still send lines, up to the count that report carried.
func TestForgedLogsAreRefused(t *testing.T) {
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db")
	holderDir := t.TempDir()
	c.startAgentWith("holder", 1, []string{"--work-dir", holderDir}, "pool=real")
	gate := t.TempDir()
	j := c.create(&jobv1.CreateJobRequest{Name: "victim", Selector: "pool=real", Commands: []string{
		fmt.Sprintf(`i=1; while [ $i -le 10 ]; do echo line $i; i=$((i+1)); done; while [ ! -f %s/go ]; do sleep 0.05; done; echo line 11`, gate)}})
	c.waitFor("the holder's first lines", func() bool { return len(c.logOf(j.GetId(), 1)) >= 10 })

	rogue := newRogue(t, c, "intruder")
	denied := [3]codes.Code{codes.PermissionDenied, codes.PermissionDenied, codes.PermissionDenied}
	// Lines at the holder's next numbers, which the holder would then see
	// dropped as duplicates, and lines far ahead.
	if got := rogue.forge(t, j.GetId(), 1, 11, "forged while running"); got != denied {
		t.Errorf("forged lines on a running job: %v, want PermissionDenied by every way", got)
	}
	// The rogue cannot speak as the holder either.
	holder := c.agent("holder")
	_, err := rogue.agent.ReportJobLog(context.Background(), &agentv1.ReportJobLogRequest{AgentId: holder.GetId(), JobId: j.GetId(), Attempt: 1,
		Chunks: []*agentv1.LogChunk{{LineNumber: 11, Content: "forged as the holder"}}})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("lines sent under the holder's id: %v, want PermissionDenied", err)
	}

	if err := os.WriteFile(filepath.Join(gate, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := c.waitStatus(j.GetId(), success, failed); got.GetStatus() != success {
		t.Fatalf("victim: %v (%s)", got.GetStatus(), got.GetMessage())
	}
	if got := rogue.forge(t, j.GetId(), 1, 1, "forged after the end"); got != denied {
		t.Errorf("forged lines on a finished job: %v, want PermissionDenied by every way", got)
	}

	lines := c.logOf(j.GetId(), 1)
	var stdout []string
	for _, l := range lines {
		if strings.Contains(l.GetContent(), "forged") {
			t.Errorf("a forged line was stored: %d %q", l.GetLineNumber(), l.GetContent())
		}
		if l.GetStream() == agentv1.LogStream_LOG_STREAM_STDOUT {
			stdout = append(stdout, l.GetContent())
		}
	}
	if len(stdout) != 11 || stdout[10] != "line 11" {
		t.Errorf("the holder's log: %q, want line 1 to line 11", stdout)
	}

	// The holder itself, after its final report: lines up to the count
	// that report carried are taken (a batch sent again after an outage),
	// none past it.
	b, err := os.ReadFile(filepath.Join(holderDir, "agent-identity.json"))
	if err != nil {
		t.Fatal(err)
	}
	var kept struct {
		ID    string `json:"agent_id"`
		Token string `json:"agent_token"`
	}
	if err := json.Unmarshal(b, &kept); err != nil || kept.ID != holder.GetId() {
		t.Fatalf("holder identity %s: %v", b, err)
	}
	conn, err := client.Dial(c.addr, client.Static(kept.Token))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	asHolder := agentv1.NewAgentServiceClient(conn)
	n := int64(len(lines))
	last := lines[n-1]
	resp, err := asHolder.ReportJobLog(context.Background(), &agentv1.ReportJobLogRequest{AgentId: kept.ID, JobId: j.GetId(), Attempt: 1,
		Chunks: []*agentv1.LogChunk{last}})
	if err != nil || resp.GetLastLine() != n {
		t.Errorf("the holder resending its last line %d after the end: %v, %v", n, resp.GetLastLine(), err)
	}
	_, err = asHolder.ReportJobLog(context.Background(), &agentv1.ReportJobLogRequest{AgentId: kept.ID, JobId: j.GetId(), Attempt: 1,
		Chunks: []*agentv1.LogChunk{{LineNumber: n + 1, Content: "past the count"}}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), fmt.Sprintf("ended with %d log lines", n)) {
		t.Errorf("the holder sending line %d past its count: %v, want InvalidArgument naming the count", n+1, err)
	}
	if got := len(c.logOf(j.GetId(), 1)); int64(got) != n {
		t.Errorf("log of %d lines after the holder's late batches, want %d", got, n)
	}
}

// TestAgentIdentity: a name held by an online agent cannot be taken by a
// registration that does not prove it is that agent (AlreadyExists, and
// the agent keeps its record, labels and jobs); the agent keeps its id and
// token on disk (mode 0600), so that, killed and started again within a
// second, it proves it and keeps its identity and its job.
func TestAgentIdentity(t *testing.T) {
	c := newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db", "--lease-ttl", "5s")
	dir := t.TempDir()
	flags := []string{"--work-dir", dir}
	first := c.startAgentWith("phoenix", 1, flags, "pool=phoenix")
	before := c.agent("phoenix")
	c.waitFor("phoenix to keep its identity", func() bool { return len(first.grepLog("agent registered")) > 0 })
	fi, err := os.Stat(filepath.Join(dir, "agent-identity.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v, %v; want mode 0600", fi, err)
	}

	// Registrations under the name without proof: refused, nothing changes.
	reg, err := client.Dial(c.addr, client.Static(agentToken))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	for _, req := range []*agentv1.RegisterRequest{
		{Name: "phoenix", Labels: map[string]string{"pool": "stolen"}, MaxConcurrentJobs: 9},
		{Name: "phoenix", Labels: map[string]string{"pool": "stolen"}, AgentId: before.GetId(), AgentToken: "guessed"},
	} {
		_, err := agentv1.NewAgentServiceClient(reg).Register(context.Background(), req)
		if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), "phoenix") {
			t.Errorf("register as the online phoenix (id %q): %v, want AlreadyExists", req.GetAgentId(), err)
		}
	}
	// A second agent process under the name, without the identity, waits.
	twin := start(t, "agent-twin", "agent", "--server", c.addr, "--name", "phoenix", "--max-jobs", "3",
		"--work-dir", t.TempDir(), "--config", os.DevNull, "--label", "pool=stolen")
	c.waitFor("the twin to be refused the name", func() bool {
		return len(twin.grepLog("the name is held by an online agent; waiting for it to go offline")) > 0
	})
	twin.stop(syscall.SIGTERM)
	now := c.agent("phoenix")
	if now.GetId() != before.GetId() || now.GetLabels()["pool"] != "phoenix" || now.GetMaxConcurrentJobs() != 1 {
		t.Fatalf("phoenix after the attempts: id %s labels %v capacity %d", now.GetId(), now.GetLabels(), now.GetMaxConcurrentJobs())
	}

	// An admin's trust is the agent's: it survives a proven restart, not a
	// takeover of the name.
	if _, err := secretv1.NewTrustServiceClient(c.conn).SetAgentTrust(context.Background(),
		&secretv1.SetAgentTrustRequest{AgentId: before.GetId(), Trusted: true}); err != nil {
		t.Fatal(err)
	}

	// The agent still gets its jobs. Attempt 1 of this one is cut by the
	// kill below; it is retried on the same agent.
	pids := t.TempDir()
	t.Cleanup(func() { killPids(t, pids) })
	j := c.create(&jobv1.CreateJobRequest{Name: "kept", Selector: "pool=phoenix", Retries: 1, Commands: []string{
		fmt.Sprintf(`echo $$ > %s/$ARCADE_JOB_ATTEMPT; if [ "$ARCADE_JOB_ATTEMPT" = 1 ]; then sleep 60; fi; echo done`, pids)}})
	c.waitStatus(j.GetId(), running)
	c.waitFor("attempt 1 to start", func() bool { _, err := os.Stat(filepath.Join(pids, "1")); return err == nil })

	first.stop(syscall.SIGKILL)
	killPids(t, pids) // what the agent's death leaves is not this test's subject
	restarted := time.Now()
	again := start(t, "agent-phoenix-again", "agent", "--server", c.addr, "--name", "phoenix", "--max-jobs", "1",
		"--work-dir", dir, "--config", os.DevNull, "--label", "pool=phoenix")
	c.waitFor("phoenix to register again", func() bool { return len(again.grepLog("agent registered")) > 0 })
	if took := time.Since(restarted); took > 5*time.Second {
		t.Logf("registering again took %s", took)
	}
	rec := again.grepLog("agent registered")[0]
	if rec["id"] != before.GetId() || rec["same_identity"] != true {
		t.Fatalf("restarted phoenix registered as %v (same identity %v), want %s", rec["id"], rec["same_identity"], before.GetId())
	}
	got := c.get(j.GetId())
	if got.GetStatus() != running || got.GetAttempt() != 1 || got.GetAgentId() != before.GetId() {
		t.Fatalf("the job after phoenix registered again: %v attempt %d on %q, want still RUNNING as attempt 1 on phoenix",
			got.GetStatus(), got.GetAttempt(), got.GetAgentId())
	}
	done := c.waitStatus(j.GetId(), success, failed)
	if done.GetStatus() != success || done.GetAgentId() != before.GetId() {
		t.Errorf("the job: %v attempt %d on %q (%s), want SUCCESS on phoenix", done.GetStatus(), done.GetAttempt(), done.GetAgentId(), done.GetMessage())
	}
	if a := c.agent("phoenix"); a.GetId() != before.GetId() || a.GetStatus() == agentv1.AgentStatus_AGENT_STATUS_OFFLINE || !a.GetTrusted() {
		t.Errorf("phoenix after the restart: id %s, %v, trusted %v", a.GetId(), a.GetStatus(), a.GetTrusted())
	}

	// Once phoenix is offline, a process without its identity may take the
	// name, but not the trust an admin gave phoenix.
	again.stop(syscall.SIGTERM)
	c.waitFor("phoenix offline", func() bool { return c.agent("phoenix").GetStatus() == agentv1.AgentStatus_AGENT_STATUS_OFFLINE })
	newcomer := start(t, "agent-newcomer", "agent", "--server", c.addr, "--name", "phoenix", "--max-jobs", "1",
		"--work-dir", t.TempDir(), "--config", os.DevNull, "--label", "pool=phoenix")
	c.waitFor("the newcomer to register", func() bool { return len(newcomer.grepLog("agent registered")) > 0 })
	if a := c.agent("phoenix"); a.GetTrusted() {
		t.Errorf("the newcomer under phoenix's name is trusted (%s)", a.GetTrustedBecause())
	}
}
