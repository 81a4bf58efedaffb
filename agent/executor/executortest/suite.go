// Package executortest is the conformance suite of executor.Executor: every
// executor (the host shell, the container) must pass it unchanged.
package executortest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-arcade/arcade/agent/executor"
)

// Factory returns a new executor for one job whose workspace is dir (an
// existing, empty directory); the suite closes it.
type Factory func(t *testing.T, dir string) executor.Executor

// Run runs the suite against the executors of factory.
func Run(t *testing.T, factory Factory) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ex := factory(t, dir)
			defer func() {
				if err := ex.Close(context.Background()); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()
			c.run(t, &job{t: t, ex: ex, dir: dir})
		})
	}
}

type job struct {
	t   *testing.T
	ex  executor.Executor
	dir string
}

// recorder collects lines, failing the test if emit is called from two
// goroutines at once.
type recorder struct {
	t     *testing.T
	mu    sync.Mutex
	busy  bool
	lines []executor.Line
	seen  chan string
}

func (r *recorder) emit(l executor.Line) {
	r.mu.Lock()
	if r.busy {
		r.t.Error("emit called concurrently")
	}
	r.busy = true
	r.lines = append(r.lines, l)
	r.busy = false
	r.mu.Unlock()
	if r.seen != nil {
		select {
		case r.seen <- l.Text:
		default:
		}
	}
}

func (r *recorder) texts(s executor.Stream) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.lines {
		if l.Stream == s {
			out = append(out, l.Text)
		}
	}
	return out
}

func (r *recorder) tagged() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.lines {
		out = append(out, l.Stream.String()+" "+l.Text)
	}
	return out
}

func (j *job) run(ctx context.Context, spec executor.Spec) (executor.Result, *recorder) {
	spec.Dir = j.dir
	rec := &recorder{t: j.t}
	return j.ex.Run(ctx, spec, rec.emit), rec
}

func want(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("lines:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

var cases = []struct {
	name string
	run  func(t *testing.T, j *job)
}{
	{"ExitCodes", func(t *testing.T, j *job) {
		res, rec := j.run(context.Background(), executor.Spec{Commands: []string{"echo one", "exit 3", "echo never"}})
		if res.Outcome != executor.Failed || res.ExitCode != 3 || res.Err == nil {
			t.Errorf("result %+v, want failed with exit 3", res)
		}
		want(t, rec.tagged(), []string{"system $ echo one", "stdout one", "system $ exit 3"})
		res, _ = j.run(context.Background(), executor.Spec{Commands: []string{"true"}})
		if res.Outcome != executor.Succeeded || res.ExitCode != 0 || res.Err != nil {
			t.Errorf("result %+v, want success", res)
		}
		res, _ = j.run(context.Background(), executor.Spec{Commands: []string{"false || echo recovered", "test 1 = 2"}})
		if res.Outcome != executor.Failed || res.ExitCode != 1 {
			t.Errorf("result %+v, want failed with exit 1 (sh -e)", res)
		}
	}},
	{"Env", func(t *testing.T, j *job) {
		res, rec := j.run(context.Background(), executor.Spec{
			Env:      map[string]string{"GREETING": "hello world", "EMPTY": ""},
			Commands: []string{`echo "$GREETING|${EMPTY-unset}|$CI|$ARCADE"`, `test -n "$PATH"`, `test -n "$HOME"`},
		})
		if res.Outcome != executor.Succeeded {
			t.Fatalf("result %+v: %q", res, rec.tagged())
		}
		want(t, rec.texts(executor.Stdout), []string{"hello world||true|true"})
	}},
	{"SecretsMasked", func(t *testing.T, j *job) {
		const secret = "p4ss-W0rd-ÄÖ"
		long := strings.Repeat("x", executor.MaxLineBytes-5)
		res, rec := j.run(context.Background(), executor.Spec{
			Env:      map[string]string{"TOKEN": secret},
			Commands: []string{`echo "token=$TOKEN"`, `echo "$TOKEN" >&2`, `printf '%s%s\n' "` + long + `" "$TOKEN"`},
		})
		if res.Outcome != executor.Succeeded {
			t.Fatalf("result %+v", res)
		}
		m := executor.NewMasker([]string{secret}, executor.DefaultMaskMinLength)
		var all strings.Builder
		rec.mu.Lock()
		for _, l := range rec.lines {
			all.WriteString(m.Mask(l.Stream, l.Text, l.Continued))
		}
		rec.mu.Unlock()
		for _, text := range m.Flush() {
			all.WriteString(text)
		}
		if strings.Contains(all.String(), secret) || !strings.Contains(all.String(), "token=***") {
			t.Errorf("masked output %q", all.String()[:min(200, all.Len())])
		}
		if n := strings.Count(all.String(), "***"); n != 3 {
			t.Errorf("%d masked secrets, want 3", n)
		}
	}},
	{"StreamsApartAndOrdered", func(t *testing.T, j *job) {
		res, rec := j.run(context.Background(), executor.Spec{Commands: []string{
			"echo out1; echo err1 >&2", "echo err2 >&2", "echo out2",
		}})
		if res.Outcome != executor.Succeeded {
			t.Fatalf("result %+v", res)
		}
		want(t, rec.texts(executor.Stdout), []string{"out1", "out2"})
		want(t, rec.texts(executor.Stderr), []string{"err1", "err2"})
		got := rec.tagged()
		idx := func(s string) int { return slices.Index(got, s) }
		if !(idx("system $ echo err2 >&2") < idx("stderr err2") && idx("stderr err1") < idx("system $ echo err2 >&2") &&
			idx("system $ echo out2") < idx("stdout out2")) {
			t.Errorf("order: %q", got)
		}
	}},
	{"CdAndExportWithinAStep", func(t *testing.T, j *job) {
		res, rec := j.run(context.Background(), executor.Spec{Commands: []string{
			"mkdir -p sub/dir", "cd sub", "export STEP_VAR=kept", "cd dir", `echo "$(basename "$(pwd)") $STEP_VAR"`,
		}})
		if res.Outcome != executor.Succeeded {
			t.Fatalf("result %+v: %q", res, rec.tagged())
		}
		want(t, rec.texts(executor.Stdout), []string{"dir kept"})
		// The next step starts afresh: at the workspace, without the export.
		_, rec = j.run(context.Background(), executor.Spec{Commands: []string{`echo "${STEP_VAR:-unset}"; ls`}})
		want(t, rec.texts(executor.Stdout), []string{"unset", "sub"})
	}},
	{"Workspace", func(t *testing.T, j *job) {
		res, _ := j.run(context.Background(), executor.Spec{Commands: []string{"echo built > out.txt", "mkdir -p bin && echo tool > bin/tool"}})
		if res.Outcome != executor.Succeeded {
			t.Fatalf("result %+v", res)
		}
		b, err := os.ReadFile(filepath.Join(j.dir, "bin", "tool"))
		if err != nil || string(b) != "tool\n" {
			t.Errorf("bin/tool on the host: %q, %v", b, err)
		}
		if err := os.WriteFile(filepath.Join(j.dir, "from-host.txt"), []byte("host\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, rec := j.run(context.Background(), executor.Spec{Commands: []string{"cat out.txt from-host.txt"}})
		want(t, rec.texts(executor.Stdout), []string{"built", "host"})
	}},
	{"LongLines", func(t *testing.T, j *job) {
		n := 2*executor.MaxLineBytes + 100
		res, rec := j.run(context.Background(), executor.Spec{Commands: []string{
			"i=0; s=0123456789; while [ $i -lt 12 ]; do s=$s$s; i=$((i+1)); done; " + // 40960 bytes
				"printf '%s%s%s%s' \"$s\" \"$s\" \"$s\" \"$s\" | head -c " + itoa(n) + "; echo; echo after",
		}})
		if res.Outcome != executor.Succeeded {
			t.Fatalf("result %+v", res)
		}
		rec.mu.Lock()
		var pieces []executor.Line
		for _, l := range rec.lines {
			if l.Stream == executor.Stdout {
				pieces = append(pieces, l)
			}
		}
		rec.mu.Unlock()
		if len(pieces) != 4 {
			t.Fatalf("%d stdout lines, want 3 pieces and one more", len(pieces))
		}
		total := 0
		for i, p := range pieces[:3] {
			total += len(p.Text)
			if p.Continued != (i < 2) || len(p.Text) > executor.MaxLineBytes {
				t.Errorf("piece %d: %d bytes, continued %v", i, len(p.Text), p.Continued)
			}
		}
		if total != n || pieces[3].Text != "after" {
			t.Errorf("%d bytes in pieces, want %d; then %q", total, n, pieces[3].Text)
		}
	}},
	{"CancelTrappedTERM", func(t *testing.T, j *job) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// A grace far longer than a step exiting on TERM takes, even on a
		// loaded machine: a Run waiting for it would be seen.
		const grace = time.Minute
		rec, done := j.start(ctx, executor.Spec{KillGrace: grace, Commands: []string{
			`trap 'echo got TERM; exit 0' TERM`, "echo ready", "sleep 600 & wait", "echo never",
		}})
		waitFor(t, rec, "$ sleep 600 & wait")
		start := time.Now()
		cancel()
		res := <-done
		if res.Outcome != executor.Cancelled || res.ExitCode != -1 || !errors.Is(res.Err, context.Canceled) {
			t.Errorf("result %+v", res)
		}
		if d := time.Since(start); d >= grace/2 {
			t.Errorf("Run returned %v after cancel, though the step exits on TERM (grace %v)", d, grace)
		}
		out := rec.texts(executor.Stdout)
		if !slices.Contains(out, "got TERM") || slices.Contains(out, "never") {
			t.Errorf("stdout %q", out)
		}
		// The line saying why the job stopped ends the log, after what the
		// step printed while it was being stopped.
		if all := rec.tagged(); all[len(all)-1] != "system job cancelled" || !slices.Contains(all, "stdout got TERM") {
			t.Errorf("lines %q, want the trap's output, then \"job cancelled\" last", all)
		}
		j.idle(t)
	}},
	{"CancelIgnoredTERM", func(t *testing.T, j *job) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		const grace = 500 * time.Millisecond
		rec, done := j.start(ctx, executor.Spec{KillGrace: grace, Commands: []string{
			`trap '' TERM`, "echo ready", "sleep 60", "echo never",
		}})
		waitFor(t, rec, "$ sleep 60")
		start := time.Now()
		cancel()
		res := <-done
		if res.Outcome != executor.Cancelled || res.ExitCode != -1 {
			t.Errorf("result %+v", res)
		}
		// At least the grace; and well before the step's sleep would end
		// (KILL came, on a machine however loaded).
		if d := time.Since(start); d < grace || d > 30*time.Second {
			t.Errorf("Run returned %v after cancel, want the grace of %v, then KILL", d, grace)
		}
		// The step outlived its grace: the job ends here (an executor may
		// refuse later steps); nothing of the step may run on.
		time.Sleep(200 * time.Millisecond)
		if out := rec.texts(executor.Stdout); slices.Contains(out, "never") {
			t.Errorf("the step went on after SIGKILL: %q", out)
		}
	}},
	{"Timeout", func(t *testing.T, j *job) {
		res, rec := j.run(context.Background(), executor.Spec{Timeout: 300 * time.Millisecond, KillGrace: 300 * time.Millisecond,
			Commands: []string{"echo started", "sleep 60"}})
		if res.Outcome != executor.TimedOut || res.ExitCode != -1 || !errors.Is(res.Err, context.DeadlineExceeded) {
			t.Errorf("result %+v", res)
		}
		if sys := rec.texts(executor.System); sys[len(sys)-1] != "job timed out after 300ms" {
			t.Errorf("system lines %q", sys)
		}
		j.idle(t)
	}},
	{"BackgroundProcessEndsWithTheStep", func(t *testing.T, j *job) {
		res, _ := j.run(context.Background(), executor.Spec{Commands: []string{"(sleep 2; echo late > late.txt) &", "echo started"}})
		if res.Outcome != executor.Succeeded {
			t.Fatalf("result %+v", res)
		}
		time.Sleep(2500 * time.Millisecond)
		if _, err := os.Stat(filepath.Join(j.dir, "late.txt")); err == nil {
			t.Error("a background process of the step outlived it")
		}
	}},
}

// start runs spec in the background; lines are also sent to rec.seen.
func (j *job) start(ctx context.Context, spec executor.Spec) (*recorder, <-chan executor.Result) {
	spec.Dir = j.dir
	rec := &recorder{t: j.t, seen: make(chan string, 100)}
	done := make(chan executor.Result, 1)
	go func() { done <- j.ex.Run(ctx, spec, rec.emit) }()
	return rec, done
}

func waitFor(t *testing.T, rec *recorder, text string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case s := <-rec.seen:
			if s == text {
				return
			}
		case <-timeout:
			t.Fatalf("no line %q; got %q", text, rec.tagged())
		}
	}
}

// idle checks that the executor still runs steps after a stopped one, and
// that nothing of the stopped step runs on.
func (j *job) idle(t *testing.T) {
	t.Helper()
	res, rec := j.run(context.Background(), executor.Spec{Commands: []string{"echo alive"}})
	if res.Outcome != executor.Succeeded || !slices.Equal(rec.texts(executor.Stdout), []string{"alive"}) {
		t.Errorf("a step after the stopped one: %+v %q", res, rec.tagged())
	}
}

func itoa(n int) string {
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}
