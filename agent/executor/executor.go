// Package executor runs the shell commands of a job and streams their
// output line by line.
//
// [Executor] is the seam: one value per job runs each of its command steps,
// as one "sh -e" script each, in one place. [Shell] runs them on the host,
// in the job's workspace; package container runs them in the job's
// container. Both pass one conformance suite (package executortest).
//
// [Run] writes the commands into a script and runs it with one shell
// process, "sh -e script", so the first failing command ends the job with
// its exit code. Before each command a [System] line "$ command" is
// emitted, ordered after all the output of the commands before it and
// before all of its own output, on both streams.
//
// The shell runs in a process group of its own. When the shell exits, when
// the job is cancelled through its context, or when it runs past
// Spec.Timeout, the whole group is killed, so background processes that a
// job started do not outlive it; processes that leave the group (setsid, a
// double fork) are ended through Spec.Contain when one is given. An agent that may run as a
// container's PID 1, or under a PID 1 that does not reap orphans, should
// call [BecomeSubreaper] once at start: Run then also reaps the killed
// processes of each job before it returns.
//
// The package runs jobs on Linux only; elsewhere Run fails every job.
package executor

import (
	"context"
	"fmt"
	"time"
)

// Executor runs the command steps of one job, in order, each as one
// "sh -e" script: "cd" and "export" carry over within a step, not across
// steps; a "$ command" System line comes before each command's output.
// Run is never called for two steps at once. A step stopped by cancel or
// timeout ends the job: an executor may refuse later steps once a stopped
// step outlived its kill grace. Close releases what the executor holds for
// the job (a container, a network); after it Run fails.
type Executor interface {
	// Run runs one step: spec.Commands with spec.Env over the executor's
	// base environment, in the job's workspace (spec.Dir on the host),
	// within spec.Timeout; cancelling ctx stops it with SIGTERM to its
	// process group, then SIGKILL after spec.KillGrace.
	Run(ctx context.Context, spec Spec, emit func(Line)) Result
	// Close ends the job's execution environment.
	Close(ctx context.Context) error
}

// Shell runs steps on the host (see Run).
type Shell struct{}

// Run implements Executor with the package's Run.
func (Shell) Run(ctx context.Context, spec Spec, emit func(Line)) Result { return Run(ctx, spec, emit) }

// Close implements Executor; the host holds nothing for a job.
func (Shell) Close(context.Context) error { return nil }

// Reason says, as a typed value, why a job or a step did not succeed, when
// the outcome alone does not: the agent reports it with the job's status.
type Reason string

// The reasons.
const (
	// ReasonNone: the outcome says it all (an exit status, a timeout).
	ReasonNone Reason = ""
	// ReasonEngineLost: the container engine went away while the job ran;
	// the attempt may run again elsewhere (like a lost agent).
	ReasonEngineLost Reason = "engine_lost"
	// ReasonOutOfMemory: the job's container hit its memory limit.
	ReasonOutOfMemory Reason = "out_of_memory"
	// ReasonImagePull: the job's image (or a service's) could not be had.
	ReasonImagePull Reason = "image_pull"
	// ReasonServiceNotReady: a service container did not become ready.
	ReasonServiceNotReady Reason = "service_not_ready"
	// ReasonContainerSetup: the job's container could not be set up (no
	// /bin/sh in the image, a bad option, the engine refused).
	ReasonContainerSetup Reason = "container_setup"
)

// Stream tells where a line of output came from.
type Stream int

const (
	// Stdout is the job's standard output.
	Stdout Stream = iota + 1
	// Stderr is the job's standard error.
	Stderr
	// System lines come from the executor: "$ command" before each
	// command, and notices such as a timeout.
	System
)

func (s Stream) String() string {
	switch s {
	case Stdout:
		return "stdout"
	case Stderr:
		return "stderr"
	case System:
		return "system"
	}
	return fmt.Sprintf("Stream(%d)", int(s))
}

// Line is one line of a job's output, without its line ending (a trailing
// "\r\n" is removed whole). Lines longer than [MaxLineBytes] are split into
// several Lines. Text is valid UTF-8: invalid bytes are replaced by U+FFFD.
type Line struct {
	Stream Stream
	Text   string
	Time   time.Time // when the executor read the line
	// Continued says the line goes on in the next Line of the same stream:
	// it was split at MaxLineBytes.
	Continued bool
}

// MaxLineBytes is the longest Text of a Line read from the job; longer
// lines are split (at a UTF-8 character boundary), never dropped.
const MaxLineBytes = 64 << 10

// Default values of Spec fields.
const (
	DefaultShell     = "/bin/sh"
	DefaultKillGrace = 2 * time.Second
)

// Spec describes a job to run.
type Spec struct {
	// Commands are run in order by one shell; the first that fails ends
	// the job. A command may span several lines.
	Commands []string

	// Env is added to the job's environment, and wins over every other
	// variable. The job's environment is otherwise minimal: PATH, HOME
	// and LANG from the agent's environment (or defaults), TMPDIR set to
	// a fresh directory inside Dir that is removed after the job, and
	// CI=true and ARCADE=true.
	Env map[string]string

	// Dir is the directory the job runs in. It must exist.
	Dir string

	// Timeout, when positive, is how long the job may run before it is
	// killed with Outcome TimedOut.
	Timeout time.Duration

	// Shell is a POSIX shell to run the commands with; DefaultShell when
	// empty. It is run as "Shell -e SCRIPT".
	Shell string

	// KillGrace is how long the job's processes have to exit after
	// SIGTERM (on cancellation or timeout) before SIGKILL;
	// DefaultKillGrace when zero or negative.
	KillGrace time.Duration

	// Contain, when set, holds every process of the job, including those
	// that leave its process group (setsid, a daemon's double fork).
	Contain Containment
}

// Containment holds all of a job's processes together, whatever process
// group or session they move to (a cgroup, say), so that none outlives the
// job. The agent's job tracker is one.
type Containment interface {
	// Add puts the job's shell in the containment. Run calls it once the
	// shell has started and before the shell runs anything (the shell
	// waits for it); an error fails the job before its first command.
	Add(pid int) error
	// Kill ends every process in the containment and returns once they are
	// gone. Run calls it when the job's process group has been killed.
	Kill() error
}

// Outcome is how a job ended.
type Outcome int

const (
	// Succeeded: every command exited with status 0.
	Succeeded Outcome = iota + 1
	// Failed: a command failed, or the job could not be started.
	Failed
	// TimedOut: the job ran past Spec.Timeout and was killed.
	TimedOut
	// Cancelled: the job's context was done and the job was killed.
	Cancelled
)

func (o Outcome) String() string {
	switch o {
	case Succeeded:
		return "succeeded"
	case Failed:
		return "failed"
	case TimedOut:
		return "timed out"
	case Cancelled:
		return "cancelled"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Result is what Run reports of a job.
type Result struct {
	// ExitCode is the shell's exit status, or -1 when the shell was
	// killed (cancellation, timeout, a signal) or could not be started.
	ExitCode int
	Outcome  Outcome
	// Err is nil when the job succeeded; otherwise it says why not. For a
	// timeout it wraps context.DeadlineExceeded, for a cancellation the
	// context's cause.
	Err      error
	Duration time.Duration
	// Reason, when set, is the typed cause of a Failed outcome beyond the
	// exit status.
	Reason Reason
}
