package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/labels"
)

const (
	pending   = agentv1.JobStatus_JOB_STATUS_PENDING
	running   = agentv1.JobStatus_JOB_STATUS_RUNNING
	success   = agentv1.JobStatus_JOB_STATUS_SUCCESS
	failed    = agentv1.JobStatus_JOB_STATUS_FAILED
	cancelled = agentv1.JobStatus_JOB_STATUS_CANCELLED
	timedOut  = agentv1.JobStatus_JOB_STATUS_TIMEOUT
)

func TestLabelRouting(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		c := newCluster(t, dsn)
		agentLabels := map[string][]string{
			"prod-big":     {"env=production", "cpu-cores=16", "gpu=true", "region=us-west"},
			"staging-spot": {"env=staging", "cpu-cores=4", "spot=true"},
			"dev-small":    {"env=dev", "cpu-cores=2"},
		}
		parallelDone(
			func() { c.startAgent("prod-big", 2, agentLabels["prod-big"]...) },
			func() { c.startAgent("staging-spot", 2, agentLabels["staging-spot"]...) },
			func() { c.startAgent("dev-small", 2, agentLabels["dev-small"]...) },
		)
		gt8 := &agentv1.LabelSelector{
			MatchLabels: map[string]string{"env": "production"},
			MatchExpressions: []*agentv1.LabelSelectorRequirement{
				{Key: "cpu-cores", Operator: agentv1.LabelOperator_LABEL_OPERATOR_GT, Values: []string{"8"}},
			},
		}
		cases := []struct {
			name     string
			selector *agentv1.LabelSelector
			text     string
		}{
			{"production and more than 8 cores", gt8, ""},
			{"staging or production", &agentv1.LabelSelector{MatchExpressions: []*agentv1.LabelSelectorRequirement{
				{Key: "env", Operator: agentv1.LabelOperator_LABEL_OPERATOR_IN, Values: []string{"staging", "production"}},
			}}, ""},
			{"has a gpu", &agentv1.LabelSelector{MatchExpressions: []*agentv1.LabelSelectorRequirement{
				{Key: "gpu", Operator: agentv1.LabelOperator_LABEL_OPERATOR_EXISTS},
			}}, ""},
			{"not spot", &agentv1.LabelSelector{MatchExpressions: []*agentv1.LabelSelectorRequirement{
				{Key: "spot", Operator: agentv1.LabelOperator_LABEL_OPERATOR_NOT_EXISTS},
			}}, ""},
			{"text form", nil, "env notin (production),cpu-cores<3"},
		}
		type placed struct {
			name string
			sel  labels.Selector
			id   string
		}
		var jobs []placed
		for _, tc := range cases {
			sel, err := labels.FromProto(tc.selector)
			if err != nil {
				t.Fatal(err)
			}
			if tc.text != "" {
				if sel, err = labels.Parse(tc.text); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 4 {
				j := c.create(&jobv1.CreateJobRequest{Name: fmt.Sprintf("%s #%d", tc.name, i), Commands: []string{"echo routed"},
					LabelSelector: tc.selector, Selector: tc.text})
				jobs = append(jobs, placed{tc.name, sel, j.GetId()})
			}
		}
		// An image job waits for an agent with a container runtime.
		boxed := c.create(&jobv1.CreateJobRequest{Name: "in a container", Commands: []string{"echo boxed"}, Image: "alpine:3"})
		// A job nobody matches yet, for merge; another one, for replace.
		qa := c.create(&jobv1.CreateJobRequest{Name: "qa only", Commands: []string{"echo qa"}, Selector: "env=qa"})
		ml := c.create(&jobv1.CreateJobRequest{Name: "ml team", Commands: []string{"echo ml"}, Selector: "team=ml,!env"})

		for _, p := range jobs {
			j := c.waitStatus(p.id, success, failed)
			if j.GetStatus() != success {
				t.Errorf("%s: status %v (%s)", p.name, j.GetStatus(), j.GetMessage())
			}
			ran := c.agent(j.GetAgentName())
			if ran == nil {
				t.Fatalf("%s: ran on unknown agent %q", p.name, j.GetAgentName())
			}
			if !p.sel.Matches(ran.GetLabels()) {
				t.Errorf("%s (%s): ran on %s whose labels %v do not match", p.name, p.sel, ran.GetName(), ran.GetLabels())
			}
		}
		// Everything else is done; the unmatched jobs still wait.
		for _, id := range []string{qa.GetId(), ml.GetId()} {
			if j := c.get(id); j.GetStatus() != pending || j.GetAgentId() != "" {
				t.Fatalf("unmatched job %s: status %v on %q, want PENDING on no agent", j.GetName(), j.GetStatus(), j.GetAgentName())
			}
		}

		ctx := context.Background()
		if j := c.get(boxed.GetId()); j.GetStatus() != pending {
			t.Fatalf("image job without a container runtime anywhere: %v on %q", j.GetStatus(), j.GetAgentName())
		}
		big := c.agent("prod-big")
		if _, err := c.agentsC.UpdateLabels(ctx, &agentv1.UpdateLabelsRequest{AgentId: big.GetId(),
			Labels: map[string]string{"container-runtime": "docker"}}); err != nil {
			t.Fatal(err)
		}
		if j := c.waitStatus(boxed.GetId(), success, failed); j.GetAgentName() != "prod-big" {
			t.Errorf("image job ran on %s, want prod-big (the one with a container runtime)", j.GetAgentName())
		}

		dev := c.agent("dev-small")
		resp, err := c.agentsC.UpdateLabels(ctx, &agentv1.UpdateLabelsRequest{AgentId: dev.GetId(),
			Labels: map[string]string{"env": "qa"}, Mode: agentv1.LabelUpdateMode_LABEL_UPDATE_MODE_MERGE})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetAgent().GetLabels(); got["env"] != "qa" || got["cpu-cores"] != "2" {
			t.Errorf("merge: labels %v, want env=qa and cpu-cores kept", got)
		}
		if j := c.waitStatus(qa.GetId(), success, failed); j.GetAgentName() != "dev-small" {
			t.Errorf("qa job ran on %s, want dev-small", j.GetAgentName())
		}

		spot := c.agent("staging-spot")
		resp, err = c.agentsC.UpdateLabels(ctx, &agentv1.UpdateLabelsRequest{AgentId: spot.GetId(),
			Labels: map[string]string{"team": "ml"}, Mode: agentv1.LabelUpdateMode_LABEL_UPDATE_MODE_REPLACE})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetAgent().GetLabels(); len(got) != 1 || got["team"] != "ml" {
			t.Errorf("replace: labels %v, want exactly team=ml", got)
		}
		if j := c.waitStatus(ml.GetId(), success, failed); j.GetAgentName() != "staging-spot" {
			t.Errorf("ml job ran on %s, want staging-spot", j.GetAgentName())
		}
	})
}

func TestCancelTimeoutRetryAndLogs(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		c := newCluster(t, dsn)
		c.startAgent("worker", 4, "role=worker")
		ctx := context.Background()

		// Cancel: the job writes its shell's pid, then sleeps.
		pidFile := filepath.Join(t.TempDir(), "pid")
		sleeper := c.create(&jobv1.CreateJobRequest{Name: "sleeper", Commands: []string{"echo $$ > " + pidFile + "; sleep 60"}})
		c.waitStatus(sleeper.GetId(), running)
		var pid int
		c.waitFor("pid file", func() bool {
			b, err := os.ReadFile(pidFile)
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			return err == nil && pid > 0
		})
		asked := time.Now()
		if _, err := c.jobs.CancelJob(ctx, &jobv1.CancelJobRequest{JobId: sleeper.GetId(), Reason: "test cancel"}); err != nil {
			t.Fatal(err)
		}
		j := c.waitStatus(sleeper.GetId(), cancelled, failed, success)
		took := time.Since(asked)
		t.Logf("cancel took %s", took)
		if j.GetStatus() != cancelled || took > 2*time.Second {
			t.Errorf("cancel: status %v after %s, want CANCELLED within 2s", j.GetStatus(), took)
		}
		if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
			t.Errorf("the job's shell (pid %d) is still there after cancel: %v", pid, err)
		}
		if _, err := c.jobs.CancelJob(ctx, &jobv1.CancelJobRequest{JobId: sleeper.GetId()}); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("cancel of a cancelled job: %v, want FailedPrecondition", err)
		}

		// Timeout.
		slow := c.create(&jobv1.CreateJobRequest{Name: "slow", Commands: []string{"sleep 30"}, Timeout: durationpb.New(time.Second)})
		j = c.waitStatus(slow.GetId(), timedOut, failed, success, cancelled)
		if j.GetStatus() != timedOut {
			t.Errorf("slow job: %v (%s), want TIMEOUT", j.GetStatus(), j.GetMessage())
		}

		// Failure, then RetryJob: attempt 2, and attempt 1 keeps its log.
		flaky := c.create(&jobv1.CreateJobRequest{Name: "flaky", Commands: []string{
			`echo "attempt $ARCADE_JOB_ATTEMPT out"`, `echo "attempt $ARCADE_JOB_ATTEMPT err" >&2`, "exit 3"}})
		j = c.waitStatus(flaky.GetId(), failed, success)
		if j.GetStatus() != failed || j.GetExitCode() != 3 || j.GetAttempt() != 1 {
			t.Fatalf("flaky: %v exit %d attempt %d", j.GetStatus(), j.GetExitCode(), j.GetAttempt())
		}
		r, err := c.jobs.RetryJob(ctx, &jobv1.RetryJobRequest{JobId: flaky.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if r.GetJob().GetAttempt() != 2 {
			t.Errorf("RetryJob: attempt %d, want 2", r.GetJob().GetAttempt())
		}
		j = c.waitStatus(flaky.GetId(), failed, success)
		if j.GetAttempt() != 2 {
			t.Errorf("after retry: attempt %d", j.GetAttempt())
		}
		for attempt := int32(1); attempt <= 2; attempt++ {
			var out, errs []string
			for _, l := range c.logOf(flaky.GetId(), attempt) {
				switch l.GetStream() {
				case agentv1.LogStream_LOG_STREAM_STDOUT:
					out = append(out, l.GetContent())
				case agentv1.LogStream_LOG_STREAM_STDERR:
					errs = append(errs, l.GetContent())
				}
			}
			want := fmt.Sprintf("attempt %d", attempt)
			if len(out) != 1 || out[0] != want+" out" || len(errs) != 1 || errs[0] != want+" err" {
				t.Errorf("attempt %d log: stdout %q stderr %q", attempt, out, errs)
			}
		}
		if _, err := c.jobs.RetryJob(ctx, &jobv1.RetryJobRequest{JobId: slow.GetId()}); err != nil {
			t.Errorf("retry of a timed-out job: %v", err)
		}

		// Automatic retries: retries=1 runs a failing job twice.
		auto := c.create(&jobv1.CreateJobRequest{Name: "auto", Commands: []string{`test "$ARCADE_JOB_ATTEMPT" = 2`}, Retries: 1})
		j = c.waitStatus(auto.GetId(), success, failed)
		if j.GetStatus() != success || j.GetAttempt() != 2 {
			t.Errorf("auto retry: %v at attempt %d, want SUCCESS at 2", j.GetStatus(), j.GetAttempt())
		}

		// A long log, interleaving stdout and stderr, comes back whole and in order.
		const n = 3000
		chatty := c.create(&jobv1.CreateJobRequest{Name: "chatty", Commands: []string{
			"echo artifact > report.txt",
			fmt.Sprintf(`i=1; while [ $i -le %d ]; do if [ $((i %% 2)) -eq 0 ]; then echo "line $i" >&2; else echo "line $i"; fi; i=$((i+1)); done`, n)},
			Artifacts: &agentv1.ArtifactConfig{Paths: []string{"*.txt"}}})
		j = c.waitStatus(chatty.GetId(), success, failed)
		if j.GetStatus() != success {
			t.Fatalf("chatty: %v", j.GetStatus())
		}
		var got []*agentv1.LogChunk
		for _, l := range c.logOf(chatty.GetId(), 0) {
			if l.GetStream() != agentv1.LogStream_LOG_STREAM_SYSTEM {
				got = append(got, l)
			}
		}
		if len(got) != n {
			t.Fatalf("chatty: %d output lines, want %d", len(got), n)
		}
		// Each stream keeps its own order; across streams the order is the
		// one the agent read the pipes in.
		var odd, even []string
		for _, l := range got {
			switch l.GetStream() {
			case agentv1.LogStream_LOG_STREAM_STDOUT:
				odd = append(odd, l.GetContent())
			case agentv1.LogStream_LOG_STREAM_STDERR:
				even = append(even, l.GetContent())
			}
		}
		if len(odd) != n/2 || len(even) != n/2 {
			t.Fatalf("chatty: %d stdout and %d stderr lines, want %d each", len(odd), len(even), n/2)
		}
		for i := range n / 2 {
			if want := fmt.Sprintf("line %d", 2*i+1); odd[i] != want {
				t.Fatalf("stdout line %d: %q, want %q", i+1, odd[i], want)
			}
			if want := fmt.Sprintf("line %d", 2*i+2); even[i] != want {
				t.Fatalf("stderr line %d: %q, want %q", i+1, even[i], want)
			}
		}
		arts, err := c.jobs.ListJobArtifacts(ctx, &jobv1.ListJobArtifactsRequest{JobId: chatty.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if a := arts.GetArtifacts(); len(a) != 1 || a[0].GetPath() != "report.txt" || a[0].GetSizeBytes() != 9 {
			t.Errorf("artifacts: %v, want report.txt of 9 bytes", a)
		} else if a[0].GetSha256() != sha256Hex("artifact\n") {
			t.Errorf("artifact sha256 %s", a[0].GetSha256())
		}
		all := c.logOf(chatty.GetId(), 0)
		for i, l := range all {
			if l.GetLineNumber() != int64(i+1) {
				t.Fatalf("line numbers have a gap at %d: %d", i+1, l.GetLineNumber())
			}
		}
	})
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
