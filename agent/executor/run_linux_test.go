//go:build linux

package executor_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-arcade/arcade/agent/executor"
)

func TestMain(m *testing.M) {
	// As an agent should: the killed processes of jobs are then reaped by
	// Run, and the tests can check that none is left.
	if err := executor.BecomeSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, "BecomeSubreaper:", err)
		os.Exit(1)
	}
	m.Run()
}

// recorder collects emitted lines and fails the test if emit is ever
// called from two goroutines at once.
type recorder struct {
	t      *testing.T
	inEmit atomic.Int32
	lines  []executor.Line
	seen   chan executor.Line // if set, every line is also sent here
}

func (r *recorder) emit(l executor.Line) {
	if r.inEmit.Add(1) != 1 {
		r.t.Error("emit called concurrently")
	}
	defer r.inEmit.Add(-1)
	if l.Time.IsZero() {
		r.t.Errorf("line %q has no time", l.Text)
	}
	r.lines = append(r.lines, l)
	if r.seen != nil {
		select {
		case r.seen <- l:
		default:
		}
	}
}

func (r *recorder) stream(s executor.Stream) []string {
	var out []string
	for _, l := range r.lines {
		if l.Stream == s {
			out = append(out, l.Text)
		}
	}
	return out
}

func (r *recorder) all() []string {
	out := make([]string, len(r.lines))
	for i, l := range r.lines {
		out[i] = tag(l.Stream) + " " + l.Text
	}
	return out
}

// segments returns, for each System line, its text and the output lines
// up to the next System line, sorted.
func (r *recorder) segments() []string {
	var out []string
	var cur []string
	flush := func() {
		if len(out) > 0 {
			slices.Sort(cur)
			if len(cur) > 0 {
				out[len(out)-1] += ": " + strings.Join(cur, ", ")
			}
		}
		cur = nil
	}
	for _, l := range r.lines {
		if l.Stream == executor.System {
			flush()
			out = append(out, l.Text)
			continue
		}
		cur = append(cur, tag(l.Stream)+" "+l.Text)
	}
	flush()
	return out
}

func run(t *testing.T, spec executor.Spec) (executor.Result, *recorder) {
	t.Helper()
	if spec.Dir == "" {
		spec.Dir = t.TempDir()
	}
	rec := &recorder{t: t}
	res := executor.Run(context.Background(), spec, rec.emit)
	assertDirEmpty(t, spec.Dir)
	return res, rec
}

func assertDirEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left in the job directory: %s", e.Name())
	}
}

func assertLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func assertGroupGone(t *testing.T, pgid int) {
	t.Helper()
	if err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process group %d still there after Run returned (kill: %v)", pgid, err)
	}
}

func TestSuccess(t *testing.T) {
	res, rec := run(t, executor.Spec{Commands: []string{"echo hello", "echo world"}})
	if res.Outcome != executor.Succeeded || res.ExitCode != 0 || res.Err != nil {
		t.Fatalf("result %+v", res)
	}
	if res.Duration <= 0 {
		t.Errorf("duration %v", res.Duration)
	}
	assertLines(t, rec.all(), []string{"sys $ echo hello", "out hello", "sys $ echo world", "out world"})
}

func TestNoCommands(t *testing.T) {
	res, rec := run(t, executor.Spec{})
	if res.Outcome != executor.Succeeded || res.ExitCode != 0 || len(rec.lines) != 0 {
		t.Fatalf("result %+v, lines %q", res, rec.all())
	}
}

func TestFailingCommandStopsTheJob(t *testing.T) {
	res, rec := run(t, executor.Spec{Commands: []string{"echo first", "sh -c 'exit 3'", "echo never"}})
	if res.Outcome != executor.Failed || res.ExitCode != 3 || res.Err == nil {
		t.Fatalf("result %+v", res)
	}
	assertLines(t, rec.all(), []string{"sys $ echo first", "out first", "sys $ sh -c 'exit 3'"})
}

func TestFailureInsideACommandLine(t *testing.T) {
	// sh -e: a failing command in a sequence on one line ends the job too.
	res, rec := run(t, executor.Spec{Commands: []string{"false; echo never"}})
	if res.Outcome != executor.Failed || res.ExitCode != 1 {
		t.Fatalf("result %+v", res)
	}
	assertLines(t, rec.stream(executor.Stdout), nil)
}

func TestEnvironment(t *testing.T) {
	t.Setenv("ARCADE_EXECUTOR_TEST_LEAK", "agent-only")
	dir := t.TempDir()
	res, rec := run(t, executor.Spec{
		Dir: dir,
		Env: map[string]string{"GREETING": "hi there", "LANG": "en_US.UTF-8", "ARCADE": "yes"},
		Commands: []string{
			`echo "greeting=$GREETING"`,
			`echo "ci=$CI arcade=$ARCADE lang=$LANG"`,
			`echo "leak=${ARCADE_EXECUTOR_TEST_LEAK-unset}"`,
			`echo "path=${PATH:+set} home=${HOME:+set}"`,
			`echo "tmpdir=$TMPDIR"; test -d "$TMPDIR" && touch "$TMPDIR/scratch"`,
			`echo "pwd=$(pwd -P)"`,
		},
	})
	if res.Outcome != executor.Succeeded {
		t.Fatalf("result %+v, lines %q", res, rec.all())
	}
	out := rec.stream(executor.Stdout)
	realDir, _ := filepath.EvalSymlinks(dir)
	want := []string{
		"greeting=hi there",
		"ci=true arcade=yes lang=en_US.UTF-8",
		"leak=unset",
		"path=set home=set",
	}
	assertLines(t, out[:4], want)
	if tmp := strings.TrimPrefix(out[4], "tmpdir="); filepath.Dir(tmp) != dir {
		t.Errorf("TMPDIR %s is not inside %s", tmp, dir)
	}
	if out[5] != "pwd="+realDir {
		t.Errorf("%s, want pwd=%s", out[5], realDir)
	}
}

func TestStreamsAreToldApartAndOrdered(t *testing.T) {
	for i := range 20 {
		res, rec := run(t, executor.Spec{Commands: []string{
			"echo e1 >&2",
			"echo o1; echo e2 >&2; echo o2; echo e3 >&2",
			"echo o3",
			"echo e4 >&2",
		}})
		if res.Outcome != executor.Succeeded {
			t.Fatalf("result %+v", res)
		}
		assertLines(t, rec.stream(executor.Stdout), []string{"o1", "o2", "o3"})
		assertLines(t, rec.stream(executor.Stderr), []string{"e1", "e2", "e3", "e4"})
		// Each "$ command" line comes after all output of the commands
		// before it and before its own output, whatever the stream; within
		// a command, stdout and stderr may interleave either way.
		assertLines(t, rec.segments(), []string{
			"$ echo e1 >&2: err e1",
			"$ echo o1; echo e2 >&2; echo o2; echo e3 >&2: err e2, err e3, out o1, out o2",
			"$ echo o3: out o3",
			"$ echo e4 >&2: err e4",
		})
		if t.Failed() {
			t.Fatalf("run %d: lines %q", i, rec.all())
		}
	}
}

func TestCommandOutputWithoutLineEnd(t *testing.T) {
	res, rec := run(t, executor.Spec{Commands: []string{"printf abc", "printf 'def\\nghi'; printf oops >&2", "echo end", "printf last"}})
	if res.Outcome != executor.Succeeded {
		t.Fatalf("result %+v", res)
	}
	assertLines(t, rec.segments(), []string{
		"$ printf abc: out abc",
		`$ printf 'def\nghi'; printf oops >&2: err oops, out def, out ghi`,
		"$ echo end: out end",
		"$ printf last: out last",
	})
	assertLines(t, rec.stream(executor.Stdout), []string{"abc", "def", "ghi", "end", "last"})
}

func TestCRLFAndInvalidUTF8(t *testing.T) {
	res, rec := run(t, executor.Spec{Commands: []string{`printf 'a\r\nb\377c\r\n'`}})
	if res.Outcome != executor.Succeeded {
		t.Fatalf("result %+v", res)
	}
	assertLines(t, rec.stream(executor.Stdout), []string{"a", "b\uFFFDc"})
}

func TestMultiLineCommand(t *testing.T) {
	res, rec := run(t, executor.Spec{Commands: []string{"for i in 1 2; do\n  echo $i\ndone"}})
	if res.Outcome != executor.Succeeded {
		t.Fatalf("result %+v", res)
	}
	assertLines(t, rec.all(), []string{"sys $ for i in 1 2; do", "sys >   echo $i", "sys > done", "out 1", "out 2"})
}

func TestTracingShowsNoMarkers(t *testing.T) {
	res, rec := run(t, executor.Spec{Commands: []string{"set -x", "echo traced"}})
	if res.Outcome != executor.Succeeded {
		t.Fatalf("result %+v", res)
	}
	assertLines(t, rec.segments(), []string{"$ set -x", "$ echo traced: err + echo traced, out traced"})
}

func TestRedirectedStderrDoesNotStallOutput(t *testing.T) {
	res, rec := run(t, executor.Spec{Commands: []string{"exec 2>/dev/null", "echo a", "echo b"}})
	if res.Outcome != executor.Succeeded {
		t.Fatalf("result %+v", res)
	}
	assertLines(t, rec.all(), []string{"sys $ exec 2>/dev/null", "sys $ echo a", "out a", "sys $ echo b", "out b"})
}

func TestStderrRedirectedButOpenDelaysOnlyOnce(t *testing.T) {
	// fd 3 keeps the stderr pipe open while the markers written to
	// stderr go to /dev/null: the emitter waits for them once, then no
	// longer, until stderr is back.
	start := time.Now()
	res, rec := run(t, executor.Spec{Commands: []string{
		"exec 3>&2 2>/dev/null", "echo a", "echo b", "exec 2>&3", "echo c >&2", "echo d",
	}})
	if res.Outcome != executor.Succeeded {
		t.Fatalf("result %+v", res)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Run took %v", d)
	}
	assertLines(t, rec.segments(), []string{
		"$ exec 3>&2 2>/dev/null", "$ echo a: out a", "$ echo b: out b", "$ exec 2>&3", "$ echo c >&2: err c", "$ echo d: out d",
	})
}

func TestLongLinesAreSplit(t *testing.T) {
	const n = 200000
	res, rec := run(t, executor.Spec{Commands: []string{fmt.Sprintf("head -c %d /dev/zero | tr '\\0' x; echo; echo short", n)}})
	if res.Outcome != executor.Succeeded {
		t.Fatalf("result %+v", res)
	}
	out := rec.stream(executor.Stdout)
	var lens []int
	for _, l := range out {
		lens = append(lens, len(l))
	}
	want := []int{65536, 65536, 65536, n - 3*65536, 5}
	if fmt.Sprint(lens) != fmt.Sprint(want) {
		t.Fatalf("line lengths %v, want %v", lens, want)
	}
	if strings.Join(out[:4], "") != strings.Repeat("x", n) || out[4] != "short" {
		t.Error("content changed")
	}
}

func TestManyLinesInOrder(t *testing.T) {
	const n = 100000
	res, rec := run(t, executor.Spec{Commands: []string{fmt.Sprintf("seq 1 %d", n), fmt.Sprintf("seq 1 %d >&2", n)}})
	if res.Outcome != executor.Succeeded {
		t.Fatalf("result %+v", res)
	}
	for _, s := range []executor.Stream{executor.Stdout, executor.Stderr} {
		out := rec.stream(s)
		if len(out) != n {
			t.Fatalf("%s: %d lines, want %d", s, len(out), n)
		}
		for i, l := range out {
			if l != strconv.Itoa(i+1) {
				t.Fatalf("%s line %d is %q", s, i, l)
			}
		}
	}
	if sys := rec.stream(executor.System); len(sys) != 2 || rec.lines[n+1].Text != sys[1] {
		for i, l := range rec.lines {
			if l.Stream == executor.System {
				t.Logf("system line %d: %q", i, l.Text)
			}
		}
		t.Errorf("system lines %q, the second at the wrong place", sys)
	}
}

// startJob runs spec in the background; the job's first stdout line must be
// the shell's pid ("echo $$"), which startJob returns once seen.
func startJob(t *testing.T, ctx context.Context, spec executor.Spec) (pgid int, done <-chan executor.Result, rec *recorder) {
	t.Helper()
	if spec.Dir == "" {
		spec.Dir = t.TempDir()
	}
	rec = &recorder{t: t, seen: make(chan executor.Line, 16)}
	ch := make(chan executor.Result, 1)
	go func() { ch <- executor.Run(ctx, spec, rec.emit) }()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l := <-rec.seen:
			if l.Stream != executor.Stdout {
				continue
			}
			pid, err := strconv.Atoi(strings.Fields(l.Text)[0])
			if err != nil {
				t.Fatalf("first line %q", l.Text)
			}
			return pid, ch, rec
		case res := <-ch:
			t.Fatalf("job ended early: %+v", res)
		case <-timeout:
			t.Fatal("job did not start")
		}
	}
}

func TestCancelKillsTheJob(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The grace is far longer than TERM takes to end sleep, even on a
	// loaded machine: a Run waiting for it (TERM not delivered) is seen.
	const grace = time.Minute
	pgid, done, rec := startJob(t, ctx, executor.Spec{KillGrace: grace, Commands: []string{"echo $$", "sleep 600", "echo never"}})
	start := time.Now()
	cancel()
	var res executor.Result
	select {
	case res = <-done:
	case <-time.After(grace + 10*time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if d := time.Since(start); d >= grace/2 {
		t.Errorf("Run returned %v after cancel: TERM did not end the step", d)
	}
	if res.Outcome != executor.Cancelled || res.ExitCode != -1 || !errors.Is(res.Err, context.Canceled) {
		t.Errorf("result %+v", res)
	}
	assertGroupGone(t, pgid)
	for _, l := range rec.stream(executor.Stdout) {
		if l == "never" {
			t.Error("the job went on after cancel")
		}
	}
	if sys := rec.stream(executor.System); sys[len(sys)-1] != "job cancelled" {
		t.Errorf("system lines %q", sys)
	}
}

// TestStopLineEndsTheLog: the line saying why a job stopped comes after
// what the job printed while it was being stopped (a TERM trap's output).
func TestStopLineEndsTheLog(t *testing.T) {
	cmds := []string{"trap 'echo cleaning up; exit 3' TERM", "echo $$", "sleep 600 & wait"}
	for _, tc := range []struct {
		name, want string
		spec       executor.Spec
		cancel     bool
	}{
		{name: "cancel", want: "job cancelled", spec: executor.Spec{KillGrace: time.Minute, Commands: cmds}, cancel: true},
		{name: "timeout", want: "job timed out after 1s", spec: executor.Spec{KillGrace: time.Minute, Timeout: time.Second, Commands: cmds}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, done, rec := startJob(t, ctx, tc.spec)
			if tc.cancel {
				cancel()
			}
			select {
			case <-done:
			case <-time.After(2 * time.Minute):
				t.Fatal("Run did not return")
			}
			var order []string
			for _, l := range rec.lines {
				if l.Text == "cleaning up" || l.Text == tc.want {
					order = append(order, l.Text)
				}
			}
			last := rec.lines[len(rec.lines)-1]
			if !slices.Equal(order, []string{"cleaning up", tc.want}) || last.Stream != executor.System || last.Text != tc.want {
				t.Errorf("lines %q (last %q), want the trap's output, then %q last", order, last.Text, tc.want)
			}
		})
	}
}

func TestCancelEscalatesToSIGKILL(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pgid, done, _ := startJob(t, ctx, executor.Spec{
		Commands:  []string{"trap '' TERM", "echo $$", "sleep 30"},
		KillGrace: 300 * time.Millisecond,
	})
	start := time.Now()
	cancel()
	res := <-done
	if d := time.Since(start); d < 300*time.Millisecond || d > 2*time.Second {
		t.Errorf("Run returned %v after cancel, want the grace of 300ms and a bit", d)
	}
	if res.Outcome != executor.Cancelled || res.ExitCode != -1 {
		t.Errorf("result %+v", res)
	}
	assertGroupGone(t, pgid)
}

func TestBackgroundChildIsKilledWhenTheShellExits(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	res, rec := run(t, executor.Spec{Dir: dir, Commands: []string{"sleep 30 &", "echo $! $$"}})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Run took %v: it waited for the background child", d)
	}
	if res.Outcome != executor.Succeeded {
		t.Fatalf("result %+v", res)
	}
	f := strings.Fields(rec.stream(executor.Stdout)[0])
	child, _ := strconv.Atoi(f[0])
	pgid, _ := strconv.Atoi(f[1])
	if err := syscall.Kill(child, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("background child %d still there (kill: %v)", child, err)
	}
	assertGroupGone(t, pgid)
}

func TestBackgroundChildIsKilledOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pgid, done, _ := startJob(t, ctx, executor.Spec{Commands: []string{"sleep 30 &", "echo $$", "sleep 30"}})
	cancel()
	select {
	case res := <-done:
		if res.Outcome != executor.Cancelled {
			t.Errorf("result %+v", res)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	assertGroupGone(t, pgid)
}

func TestEscapedProcessHoldingTheOutputDoesNotHangRun(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("no setsid")
	}
	start := time.Now()
	res, rec := run(t, executor.Spec{Commands: []string{`setsid sh -c 'echo $$; exec sleep 30' &`, "sleep 0.2"}})
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Run took %v", d)
	}
	out := rec.stream(executor.Stdout)
	if len(out) != 1 {
		t.Fatalf("output %q", rec.all())
	}
	// Out of the job's process group, it is out of Run's reach: end it.
	pid, err := strconv.Atoi(out[0])
	if err != nil {
		t.Fatal(err)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, 0, nil) // this process is its subreaper
	if res.Outcome != executor.Succeeded {
		t.Errorf("result %+v", res)
	}
}

func TestTimeout(t *testing.T) {
	start := time.Now()
	res, rec := run(t, executor.Spec{Commands: []string{"echo start", "sleep 30"}, Timeout: time.Second})
	if d := time.Since(start); d < time.Second || d > 3*time.Second {
		t.Errorf("Run took %v with a timeout of 1s", d)
	}
	if res.Outcome != executor.TimedOut || res.ExitCode != -1 || !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Errorf("result %+v", res)
	}
	assertLines(t, rec.all(), []string{"sys $ echo start", "out start", "sys $ sleep 30", "sys job timed out after 1s"})
}

func TestContextDeadlineIsACancellation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res := executor.Run(ctx, executor.Spec{Dir: t.TempDir(), Commands: []string{"sleep 30"}}, nil)
	if res.Outcome != executor.Cancelled || !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Errorf("result %+v", res)
	}
}

func TestSetupErrors(t *testing.T) {
	dir := t.TempDir()
	for name, spec := range map[string]executor.Spec{
		"no dir":        {Commands: []string{"true"}},
		"missing dir":   {Dir: filepath.Join(dir, "missing"), Commands: []string{"true"}},
		"missing shell": {Dir: dir, Shell: filepath.Join(dir, "no-shell"), Commands: []string{"true"}},
		"bad env":       {Dir: dir, Env: map[string]string{"A=B": "c"}, Commands: []string{"true"}},
	} {
		res := executor.Run(context.Background(), spec, nil)
		if res.Outcome != executor.Failed || res.ExitCode != -1 || res.Err == nil {
			t.Errorf("%s: result %+v", name, res)
		}
	}
	assertDirEmpty(t, dir)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res := executor.Run(ctx, executor.Spec{Dir: dir}, nil); res.Outcome != executor.Cancelled {
		t.Errorf("cancelled context: result %+v", res)
	}
}

func TestOtherShell(t *testing.T) {
	bash := "/bin/bash"
	if _, err := os.Stat(bash); err != nil {
		t.Skip("no bash")
	}
	res, rec := run(t, executor.Spec{Shell: bash, Commands: []string{`echo "${BASH_VERSION:+bash}"`}})
	if res.Outcome != executor.Succeeded {
		t.Fatalf("result %+v", res)
	}
	assertLines(t, rec.stream(executor.Stdout), []string{"bash"})
}

func tag(s executor.Stream) string {
	switch s {
	case executor.Stdout:
		return "out"
	case executor.Stderr:
		return "err"
	}
	return "sys"
}
