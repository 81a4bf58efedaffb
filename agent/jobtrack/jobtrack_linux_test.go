//go:build linux

package jobtrack

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-arcade/arcade/agent/executor"
)

// escapers are commands that leave processes behind in every way a job
// can: a background child, a double-forked child (its parent exits, it is
// orphaned) and a child in a session of its own (setsid). Each writes its
// pid into the folder $PIDS.
var escapers = []string{
	`sleep 300 & echo $! > "$PIDS/background"`,
	`sh -c 'sleep 301 & echo $! > "$PIDS/double-fork"' &`,
	`setsid sh -c 'echo $$ > "$PIDS/setsid"; exec sleep 302' &`,
	// Wait until all three wrote their pid.
	`while [ $(ls "$PIDS" | wc -l) -lt 3 ]; do sleep 0.05; done`,
}

func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// leftPids reads the pids the escapers wrote, and kills them at the end of
// the test whatever happens.
func leftPids(t *testing.T, dir string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, name := range []string{"background", "double-fork", "setsid"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("pid of the %s child: %v", name, err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = pid
		t.Cleanup(func() {
			if alive(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		})
	}
	return out
}

// alive reports whether pid runs (a zombie has ended).
func alive(pid int) bool {
	st, ok := readStat(pid)
	return ok && st.state != 'Z'
}

// modes runs a test with the cgroup, where this machine has one, and with
// the process group and marker alone.
func modes(t *testing.T, test func(t *testing.T, noCgroup bool)) {
	t.Run("marker", func(t *testing.T) { test(t, true) })
	t.Run("cgroup", func(t *testing.T) {
		base, err := cgroupBase("probe-" + strconv.Itoa(os.Getpid()))
		if err != nil {
			t.Skip("no usable cgroup here:", err)
		}
		_ = os.Remove(base)
		test(t, false)
	})
}

func open(t *testing.T, dir string, noCgroup bool) *Tracker {
	t.Helper()
	tr, err := Open(dir, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if noCgroup {
		tr.sys.release()
		tr.sys.base = ""
	}
	return tr
}

// TestJobEndsEveryProcess: when a command step ends, nothing it started
// runs on, whatever process group or session it moved to.
func TestJobEndsEveryProcess(t *testing.T) {
	modes(t, func(t *testing.T, noCgroup bool) {
		tr := open(t, t.TempDir(), noCgroup)
		defer tr.Close()
		ws, pids := t.TempDir(), t.TempDir()
		job, err := tr.Begin("job-1", 1, ws)
		if err != nil {
			t.Fatal(err)
		}
		env := job.Env()
		env["PIDS"] = pids
		res := executor.Run(context.Background(), executor.Spec{Commands: escapers, Env: env, Dir: ws, Contain: job}, nil)
		if res.Outcome != executor.Succeeded {
			t.Fatalf("job: %v %v", res.Outcome, res.Err)
		}
		for name, pid := range leftPids(t, pids) {
			if alive(pid) {
				t.Errorf("the %s child (pid %d) outlived its job", name, pid)
			}
		}
		if err := job.End(); err != nil {
			t.Fatal(err)
		}
		if entries, _ := os.ReadDir(tr.dir); len(entries) != 0 {
			t.Errorf("records left: %v", entries)
		}
	})
}

// TestSweepEndsWhatAnEarlierLifeLeft: an agent that died without ending
// its job (its tracker never saw End) left the job's processes and
// workspace; the next Open and Sweep of the same data folder end them.
func TestSweepEndsWhatAnEarlierLifeLeft(t *testing.T) {
	modes(t, func(t *testing.T, noCgroup bool) {
		data := t.TempDir()
		tr := open(t, data, noCgroup)
		ws := filepath.Join(t.TempDir(), "ws")
		if err := os.MkdirAll(filepath.Join(ws, "ro"), 0o755); err != nil {
			t.Fatal(err)
		}
		_ = os.Chmod(filepath.Join(ws, "ro"), 0o500) // removed all the same
		pids := t.TempDir()
		job, err := tr.Begin("job-2", 3, ws)
		if err != nil {
			t.Fatal(err)
		}
		// The job's shell, started as the executor does: in a group of its
		// own, waiting on stdin until it is contained.
		cmd := exec.Command("/bin/sh", "-c", "read -r _; "+strings.Join(escapers, "\n")+"\nsleep 303")
		cmd.Env = append(os.Environ(), MarkerEnv+"="+job.Env()[MarkerEnv], "PIDS="+pids)
		cmd.Dir = ws
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		gate, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
		if err := job.Add(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(gate, "go\n")
		deadline := time.Now().Add(10 * time.Second)
		for n := 0; n < 3 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			entries, _ := os.ReadDir(pids)
			n = len(entries)
		}
		time.Sleep(100 * time.Millisecond) // let the pid files be written whole
		left := leftPids(t, pids)
		left["shell"] = cmd.Process.Pid
		// The agent dies: its lock goes, End is never called.
		tr.Close()

		again := open(t, data, noCgroup)
		defer again.Close()
		var hooked []Leftover
		again.AddHook(func(_ context.Context, key string, l []Leftover) error {
			if key != again.Key() {
				t.Errorf("hook key %q, want %q", key, again.Key())
			}
			hooked = l
			return nil
		})
		if err := again.Sweep(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait() // the shell is this test's child: reap it
		for name, pid := range left {
			if alive(pid) {
				t.Errorf("the %s process (pid %d) survived the sweep", name, pid)
			}
		}
		if _, err := os.Stat(ws); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("workspace left: %v", err)
		}
		if len(hooked) != 1 || hooked[0].JobID != "job-2" || hooked[0].Attempt != 3 || hooked[0].Workspace != ws {
			t.Errorf("hook saw %+v", hooked)
		}
		if entries, _ := os.ReadDir(again.dir); len(entries) != 0 {
			t.Errorf("records left: %v", entries)
		}
	})
}

func TestDataFolderInUse(t *testing.T) {
	dir := t.TempDir()
	first, err := Open(dir, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, logger(t))
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "held by pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second agent on the same folder: %v", err)
	}
	first.Close()
	second, err := Open(dir, logger(t))
	if err != nil {
		t.Fatalf("after the first agent is gone: %v", err)
	}
	second.Close()
}
