package container

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/go-arcade/arcade/agent/executor"
)

// stepWrapper runs a step's script in the exec's own process group (an
// exec's process leads a session and group of its own), records the
// group's id for signals, and on the script's end records its status and
// kills what the script left running in the group, itself included, as
// the shell executor does when its shell exits. The wrapper outlives a
// SIGTERM (its trap is reset in the script) until the script ends.
const stepWrapper = `trap : TERM; echo $$ >"$1"; /bin/sh -e "$2"; rc=$?; echo $rc >"$3"; kill -KILL 0`

// signalScript sends a signal to the running step's process group.
const signalScript = `p=$(cat "$2" 2>/dev/null) && [ -n "$p" ] && kill -"$1" -"$p" 2>/dev/null; :`

// drainAfterKill bounds the wait for a step's output once its group was
// killed.
const drainAfterKill = 300 * time.Millisecond

// Run runs one step in the job's container; see executor.Executor.
func (j *Job) Run(ctx context.Context, spec executor.Spec, emit func(executor.Line)) executor.Result {
	start := time.Now()
	if emit == nil {
		emit = func(executor.Line) {}
	}
	r := j.run(ctx, spec, emit)
	r.Duration = time.Since(start)
	return r
}

func failed(reason executor.Reason, err error) executor.Result {
	return executor.Result{ExitCode: -1, Outcome: executor.Failed, Err: err, Reason: reason}
}

func (j *Job) run(ctx context.Context, spec executor.Spec, emit func(executor.Line)) executor.Result {
	if err := ctx.Err(); err != nil {
		return executor.Result{ExitCode: -1, Outcome: executor.Cancelled, Err: fmt.Errorf("job cancelled before it started: %w", context.Cause(ctx))}
	}
	if err := executor.Validate(spec); err != nil {
		return failed(executor.ReasonNone, err)
	}
	j.mu.Lock()
	closed, stopped := j.closed, j.stopped
	j.steps++
	n := j.steps
	j.mu.Unlock()
	if closed || j.id == "" {
		return failed(executor.ReasonContainerSetup, errors.New("the job's container is gone"))
	}
	if stopped {
		return failed(executor.ReasonNone, errors.New("the job's container was killed when an earlier step was stopped"))
	}
	grace := spec.KillGrace
	if grace <= 0 {
		grace = executor.DefaultKillGrace
	}
	nonce := executor.NewNonce()
	base, script, pidFile, rcFile := j.stepFiles(n)
	// A step may have left anything under these names: they go first.
	for _, ext := range []string{".sh", ".pid", ".rc"} {
		_ = j.scratch.RemoveAll(base + ext)
	}
	if err := j.scratch.WriteFile(base+".sh", []byte(executor.Script(spec.Commands, nonce)), 0o644); err != nil {
		return failed(executor.ReasonContainerSetup, fmt.Errorf("writing step script: %w", err))
	}
	defer func() {
		for _, ext := range []string{".sh", ".pid", ".rc"} {
			_ = j.scratch.RemoveAll(base + ext)
		}
	}()

	env := []string{"CI=true", "ARCADE=true"}
	for k, v := range spec.Env {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	oomBefore := -1
	if j.spec.MemoryBytes > 0 {
		oomBefore = j.oomKills(ctx)
	}

	e := j.e
	ex, err := e.c.ExecCreate(ctx, j.id, client.ExecCreateOptions{
		Cmd: []string{"/bin/sh", "-c", stepWrapper, "arcade-step", pidFile, script, rcFile},
		Env: env, WorkingDir: WorkspaceDir, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return j.lostOr(executor.ReasonContainerSetup, "start the step", err)
	}
	att, err := e.c.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return j.lostOr(executor.ReasonContainerSetup, "start the step", err)
	}
	out := executor.NewOutput(spec.Commands, nonce, emit)
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(out.Stdout(), out.Stderr(), att.Reader)
		copied <- err
	}()

	var timeout <-chan time.Time
	if spec.Timeout > 0 {
		t := time.NewTimer(spec.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	outcome, stopErr := executor.Outcome(0), error(nil)
	// The line saying why the step stopped is told once the step's output
	// is drained: what the step printed before the stop, still in flight
	// from the engine, comes first in the log.
	stopLine := ""
	var copyErr error
	done := false
	select {
	case copyErr = <-copied:
		done = true
	case <-ctx.Done():
		outcome, stopErr = executor.Cancelled, fmt.Errorf("job cancelled: %w", context.Cause(ctx))
		stopLine = "job cancelled"
	case <-timeout:
		outcome = executor.TimedOut
		stopErr = fmt.Errorf("job timed out after %s: %w", spec.Timeout, context.DeadlineExceeded)
		stopLine = fmt.Sprintf("job timed out after %s", spec.Timeout)
	}
	if !done {
		// The grace counts from the stop, not from the signal's delivery.
		graceOver := time.After(grace)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace+2*time.Second)
		go j.signal(sctx, "TERM", pidFile)
		select {
		case copyErr = <-copied:
			done = true
		case <-graceOver:
		}
		if !done {
			// SIGKILL to the whole container (its init, and so every
			// process in it): one call, where an exec of kill would cost a
			// process start in the container. The job ends with its step,
			// so the container is spent: later steps fail.
			j.mu.Lock()
			j.stopped = true
			j.mu.Unlock()
			if _, err := e.c.ContainerKill(sctx, j.id, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
				j.signal(sctx, "KILL", pidFile)
			}
			select {
			case copyErr = <-copied:
			case <-time.After(drainAfterKill):
				att.Close()
				copyErr = <-copied
			}
		}
		cancel()
	}
	att.Close()
	if stopLine != "" {
		out.System(stopLine)
	}
	out.Close()

	if outcome != 0 {
		return executor.Result{ExitCode: -1, Outcome: outcome, Err: stopErr}
	}
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	insp, err := e.c.ExecInspect(ictx, ex.ID, client.ExecInspectOptions{})
	if err != nil {
		return j.lostOr(executor.ReasonContainerSetup, "read the step's exit status", err)
	}
	code := insp.ExitCode
	b, rcErr := j.scratch.ReadFile(base + ".rc")
	if rcErr == nil {
		if c, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			code = c
		}
	}
	oom := code == 137 && oomBefore >= 0 && j.oomKills(ictx) > oomBefore
	if rcErr != nil && !oom {
		// The wrapper was killed before the script ended: by the engine
		// stopping the container (it may take a moment to say so), or by
		// the step itself.
		if res, lost := j.checkLost(ictx, copyErr); lost {
			return res
		}
	}
	if code == 0 {
		return executor.Result{ExitCode: 0, Outcome: executor.Succeeded}
	}
	res := executor.Result{ExitCode: code, Outcome: executor.Failed, Err: fmt.Errorf("exit status %d", code)}
	if oom {
		res.Reason = executor.ReasonOutOfMemory
		res.Err = fmt.Errorf("out of memory (limit %s)", FormatBytes(j.spec.MemoryBytes))
	}
	return res
}

// lostOr is the result of a failed API call: the engine lost, or reason.
func (j *Job) lostOr(reason executor.Reason, what string, err error) executor.Result {
	ferr := j.e.engineError(reason, what, err)
	return failed(ferr.Reason, ferr)
}

// checkLost reports whether the step ended because the engine or the job's
// container went away.
func (j *Job) checkLost(ctx context.Context, copyErr error) (executor.Result, bool) {
	deadline := time.Now().Add(time.Second)
	for {
		if !j.e.alive() {
			return failed(executor.ReasonEngineLost, fmt.Errorf("container engine lost while the step ran: %v", orEOF(copyErr))), true
		}
		if !j.running(ctx) {
			return failed(executor.ReasonEngineLost, errors.New("container engine lost: the job's container stopped while the step ran")), true
		}
		if time.Now().After(deadline) {
			return executor.Result{}, false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func orEOF(err error) error {
	if err == nil {
		return errors.New("output stream ended")
	}
	return err
}

// running reports whether the job's container runs.
func (j *Job) running(ctx context.Context) bool {
	insp, err := j.e.c.ContainerInspect(ctx, j.id, client.ContainerInspectOptions{})
	return err == nil && insp.Container.State != nil && insp.Container.State.Running
}

// signal sends sig to the running step's process group.
func (j *Job) signal(ctx context.Context, sig, pidFile string) {
	_, _, _ = j.exec(ctx, "0", []string{"/bin/sh", "-c", signalScript, "arcade-signal", sig, pidFile})
}

// oomKills reads how many processes the container's memory limit killed
// (cgroup v1 memory.oom_control, v2 memory.events); -1 when unknown. Right
// after an OOM kill the container may be too short of memory to start the
// reading exec: it is tried a few times.
func (j *Job) oomKills(ctx context.Context) int {
	for try := 0; ; try++ {
		if n := j.readOOMKills(ctx); n >= 0 || try == 4 || ctx.Err() != nil {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (j *Job) readOOMKills(ctx context.Context) int {
	code, out, err := j.exec(ctx, "0", []string{"/bin/sh", "-c",
		"cat /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events 2>/dev/null; :"})
	if err != nil || code != 0 {
		return -1
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "oom_kill" {
			if n, err := strconv.Atoi(f[1]); err == nil {
				return n
			}
		}
	}
	return -1
}

// FormatBytes writes a memory size as people read limits: 64MiB, 1.5GiB.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	s := strconv.FormatFloat(v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + string("KMGTPE"[exp]) + "iB"
}
