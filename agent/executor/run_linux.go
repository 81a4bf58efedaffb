//go:build linux

package executor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// drainIdle is how long the readers wait for more output once the
	// job's process group has been killed; only a process that left the
	// group can still hold the pipes open by then.
	drainIdle = time.Second
	// drainMax is how much the readers take once the group has been
	// killed, should an escaped process keep writing.
	drainMax = 4 << 20
	// reapTimeout bounds the wait for the killed processes of a job to be
	// gone, when this process reaps them.
	reapTimeout = 5 * time.Second

	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// BecomeSubreaper makes the calling process a child subreaper
// (PR_SET_CHILD_SUBREAPER): the processes of a job orphaned by the death of
// their parent are then re-parented to it rather than to PID 1, and Run
// reaps them, so that no process of a job, not even a zombie, is left when
// Run returns. It affects the whole process; call it once, at start.
func BecomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// reapsOrphans reports whether orphaned descendants come to this process.
func reapsOrphans() bool {
	if os.Getpid() == 1 {
		return true
	}
	var v int32
	err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&v)), 0, 0, 0)
	return err == nil && v != 0
}

// Run runs the job described by spec. It returns once the job's process
// group has been killed (and, see BecomeSubreaper, reaped) and all its
// output has been passed to emit. emit is called from one goroutine at a
// time, never after Run returns, and may be nil.
//
// Output is read until the pipes close; once the group has been killed, a
// process that escaped it and still holds them open is waited for only
// while it keeps writing (up to 4 MiB), and at most 1s of silence.
func Run(ctx context.Context, spec Spec, emit func(Line)) Result {
	start := time.Now()
	if emit == nil {
		emit = func(Line) {}
	}
	r := run(ctx, spec, emit)
	r.Duration = time.Since(start)
	return r
}

func failed(err error) Result {
	return Result{ExitCode: -1, Outcome: Failed, Err: err}
}

func run(ctx context.Context, spec Spec, emit func(Line)) Result {
	if err := ctx.Err(); err != nil {
		return Result{ExitCode: -1, Outcome: Cancelled, Err: fmt.Errorf("job cancelled before it started: %w", context.Cause(ctx))}
	}
	if err := validate(spec); err != nil {
		return failed(err)
	}
	shell := spec.Shell
	if shell == "" {
		shell = DefaultShell
	}
	grace := spec.KillGrace
	if grace <= 0 {
		grace = DefaultKillGrace
	}
	dir, err := filepath.Abs(spec.Dir)
	if err != nil {
		return failed(err)
	}
	if fi, err := os.Stat(dir); err != nil {
		return failed(fmt.Errorf("job directory: %w", err))
	} else if !fi.IsDir() {
		return failed(fmt.Errorf("job directory %s is not a directory", dir))
	}

	tmp, err := os.MkdirTemp(dir, ".arcade-tmp-")
	if err != nil {
		return failed(fmt.Errorf("job temporary directory: %w", err))
	}
	defer removeAll(tmp)

	var nonceBytes [8]byte
	_, _ = rand.Read(nonceBytes[:])
	nonce := hex.EncodeToString(nonceBytes[:])
	scriptPath := filepath.Join(tmp, "script.sh")
	body := script(spec.Commands, nonce)
	if spec.Contain != nil {
		// The shell waits on fd 3 until it is contained (a line), and
		// gives up if the agent is gone (end of file) before that.
		body = "IFS= read -r _ <&3 || exit 125\nexec 3<&-\n" + body
	}
	if err := os.WriteFile(scriptPath, []byte(body), 0o600); err != nil {
		return failed(fmt.Errorf("writing job script: %w", err))
	}

	outR, outW, err := os.Pipe()
	if err != nil {
		return failed(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return failed(err)
	}

	cmd := exec.Command(shell, "-e", scriptPath)
	cmd.Dir = dir
	cmd.Env = environ(spec.Env, tmp)
	cmd.Stdout = outW
	cmd.Stderr = errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var gateR, gateW *os.File
	if spec.Contain != nil {
		if gateR, gateW, err = os.Pipe(); err != nil {
			outR.Close()
			errR.Close()
			outW.Close()
			errW.Close()
			return failed(err)
		}
		cmd.ExtraFiles = []*os.File{gateR}
	}
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if gateR != nil {
		gateR.Close()
	}
	if err != nil {
		outR.Close()
		errR.Close()
		if gateW != nil {
			gateW.Close()
		}
		return failed(fmt.Errorf("starting %s: %w", shell, err))
	}
	pgid := cmd.Process.Pid
	var containErr error
	if spec.Contain != nil {
		if containErr = spec.Contain.Add(pgid); containErr == nil {
			_, containErr = gateW.Write([]byte("go\n"))
		}
		gateW.Close() // on failure the shell reads end of file and exits
	}

	// Output: two readers feed the emitter.
	events := make(chan event, 256)
	emitted := make(chan struct{})
	go func() {
		(&emitter{emit: emit, commands: spec.Commands}).run(events)
		close(emitted)
	}()
	send := func(ev event) { events <- ev }
	readers := []*reader{
		{f: outR, split: newSplitter(Stdout, nonce, send)},
		{f: errR, split: newSplitter(Stderr, nonce, send)},
	}
	var readersDone sync.WaitGroup
	for _, rd := range readers {
		readersDone.Add(1)
		go func() {
			defer readersDone.Done()
			rd.run()
			send(event{kind: eofEvent, stream: rd.split.stream, time: time.Now()})
		}()
	}

	// The shell's exit is observed without reaping it, so that its pid,
	// the group's id, cannot be reused before the group is killed.
	exited := make(chan struct{})
	go func() {
		waitExit(pgid)
		close(exited)
	}()

	var timeout <-chan time.Time
	if spec.Timeout > 0 {
		t := time.NewTimer(spec.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	// The lines saying why the job stopped are emitted after the job's
	// output still in flight (a "$ command" line, what a TERM trap
	// prints), so that they end the log; each keeps the time it happened.
	var stopLines []event
	stopLine := func(text string) {
		stopLines = append(stopLines, event{kind: systemEvent, text: text, time: time.Now()})
	}
	outcome, stopErr := Outcome(0), error(nil)
	if containErr != nil {
		outcome, stopErr = Failed, fmt.Errorf("cannot contain the job's processes: %w", containErr)
		stopLine(stopErr.Error())
	} else {
		select {
		case <-exited:
		case <-ctx.Done():
			outcome, stopErr = Cancelled, fmt.Errorf("job cancelled: %w", context.Cause(ctx))
			stopLine("job cancelled")
		case <-timeout:
			outcome = TimedOut
			stopErr = fmt.Errorf("job timed out after %s: %w", spec.Timeout, context.DeadlineExceeded)
			stopLine(fmt.Sprintf("job timed out after %s", spec.Timeout))
		}
	}
	if outcome != 0 {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(grace):
		}
	}
	// The shell is gone or out of time: nothing of the job may stay.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-exited
	waitErr := cmd.Wait()
	if spec.Contain != nil {
		// What left the group (setsid, a double fork) ends here too.
		if err := spec.Contain.Kill(); err != nil {
			stopLine("could not end every process of the job: " + err.Error())
		}
	}
	reapGroup(pgid)

	for _, rd := range readers {
		rd.drain()
	}
	readersDone.Wait()
	for _, ev := range stopLines {
		send(ev)
	}
	close(events)
	<-emitted

	if outcome != 0 {
		return Result{ExitCode: -1, Outcome: outcome, Err: stopErr}
	}
	code := cmd.ProcessState.ExitCode()
	switch {
	case waitErr == nil && code == 0:
		return Result{ExitCode: 0, Outcome: Succeeded}
	case waitErr == nil:
		waitErr = fmt.Errorf("exit status %d", code)
	}
	return Result{ExitCode: code, Outcome: Failed, Err: waitErr}
}

// environ returns the job's environment: a minimal base, CI=true and
// ARCADE=true, then env, which wins.
func environ(env map[string]string, tmp string) []string {
	vars := map[string]string{
		"PATH":   getenv("PATH", defaultPath),
		"HOME":   getenv("HOME", "/"),
		"LANG":   getenv("LANG", "C.UTF-8"),
		"TMPDIR": tmp,
		"CI":     "true",
		"ARCADE": "true",
	}
	for k, v := range env {
		vars[k] = v
	}
	list := make([]string, 0, len(vars))
	for k, v := range vars {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	return list
}

func getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// waitExit blocks until process pid has exited, without reaping it.
func waitExit(pid int) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return
		}
	}
}

// reapGroup waits, when this process reaps orphans, until the killed
// processes of group pgid are gone, reaping them.
func reapGroup(pgid int) {
	if !reapsOrphans() {
		return
	}
	deadline := time.Now().Add(reapTimeout)
	for {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-pgid, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) || time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// reader reads one of the job's pipes into a splitter.
type reader struct {
	f        *os.File
	split    *splitter
	draining atomic.Bool
}

func (r *reader) run() {
	defer r.f.Close()
	buf := make([]byte, 32<<10)
	var afterKill int
	for {
		draining := r.draining.Load()
		if draining {
			_ = r.f.SetReadDeadline(time.Now().Add(drainIdle))
		}
		n, err := r.f.Read(buf)
		if n > 0 {
			r.split.write(buf[:n])
			if draining {
				if afterKill += n; afterKill > drainMax {
					break
				}
			}
		}
		if err != nil {
			break
		}
	}
	r.split.flush()
}

// drain tells the reader that the job's processes are gone: what is left in
// the pipe is read, but no longer waited for forever.
func (r *reader) drain() {
	r.draining.Store(true)
	_ = r.f.SetReadDeadline(time.Now().Add(drainIdle))
}

// removeAll removes dir, making read-only directories that a job left
// (a Go module cache, for one) writable first.
func removeAll(dir string) {
	if os.RemoveAll(dir) == nil {
		return
	}
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(path, 0o700)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}
