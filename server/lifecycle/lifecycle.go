// Package lifecycle owns every change of state of jobs and pipeline runs:
// a job created, an agent's status report, a cancel or retry by request, a
// lease that expires, a job far past its timeout, a run that advances or is
// stopped, and the runs that triggers (cron, webhook, a pipeline completing)
// create. Each change is one store transaction; what follows it (events,
// waking the dispatcher, telling an agent to stop) goes through Effects.
//
// Outcomes are typed values: an attempt that ends badly records a
// jobstate.Reason beside its status, and retry policies read that reason,
// never the message. Refusals are typed errors (ErrNotFound,
// ErrInvalidTransition, ErrNotLeased, ErrInvalidArgument, ErrForbidden)
// that the gRPC adapters in server/service turn into status codes in one
// place.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/server/store"
)

// Config tunes the life cycle.
type Config struct {
	// LeaseTTL is how long a job stays leased without a heartbeat.
	LeaseTTL time.Duration
	// TimeoutGrace is how long past its timeout a job may run before the
	// server ends it as TIMEOUT itself (the agent normally does it first).
	TimeoutGrace time.Duration
	// ApprovalTimeout is how long an approval job waits for a decision
	// when it sets no timeout (0: DefaultApprovalTimeout).
	ApprovalTimeout time.Duration
}

// Effects carries out what a change asks of the rest of the server once it
// is stored. Implementations must not block.
type Effects interface {
	// Wake tells the dispatcher that a job may be waiting or a slot free.
	Wake()
	// Cancel tells an agent that a job it runs is to stop.
	Cancel(agentID string)
	// JobEvent publishes an event about a job.
	JobEvent(j *store.Job, typ jobv1.EventType, msg string)
	// AttemptEnded tells the followers of a job's log that its attempt
	// ended (no more lines come).
	AttemptEnded(j *store.Job)
	// RunEvent publishes the state of a pipeline run.
	RunEvent(r *store.PipelineRun)
}

// Lifecycle changes the state of jobs and runs in the store.
type Lifecycle struct {
	cfg   Config
	store *store.Store
	fx    Effects
	now   func() time.Time
	log   *slog.Logger
	// sources prepares runs of pipelines with a source (nil: none do).
	sources Sources
	// steps checks a new run's plugin steps (nil: not checked).
	steps StepChecker

	// plans keeps the plans of runs (plans.go); index the pipelines'
	// triggers (triggerindex.go).
	plans planCache
	index triggerIndex

	// graceMu guards graceUntil (before it, no lease expires: leases.go)
	// and troubled (the store failed since the grace began).
	graceMu    sync.Mutex
	graceUntil time.Time
	troubled   bool
}

// Sources prepares a run of a pipeline with a source before it is created:
// it resolves the commit the run builds (o.Commit empty: o.Ref, or the
// source's default branch, now) and, for a pipeline whose definition lives
// in its repository, reads it at that commit into o.Spec (a broken file
// sets o.DefinitionError: the run is created and ends FAILED with it). It
// leaves a pipeline without a source alone. An error refuses the run: a
// ref that names nothing answers ErrInvalidArgument.
type Sources interface {
	Prepare(ctx context.Context, p *store.Pipeline, o *RunOrigin) error
}

// UseSources sets what prepares runs of pipelines with a source.
func (l *Lifecycle) UseSources(s Sources) { l.sources = s }

// StepChecker checks the plugin steps of a run's definition against the
// plugins served when the run is created: a pipeline stored before one of
// its plugins was swapped may give it a with: the new version refuses. The
// problem found ("" for none) ends the run FAILED before any job runs.
type StepChecker interface {
	CheckSteps(spec *jobv1.PipelineDetail) string
}

// UseStepChecker sets what checks the plugin steps of new runs.
func (l *Lifecycle) UseStepChecker(c StepChecker) { l.steps = c }

// Refuse is an error of kind (ErrInvalidArgument…) with its own message,
// for the Sources.
func Refuse(kind error, format string, args ...any) error { return refuse(kind, format, args...) }

// New returns the life cycle over a migrated store; now is its clock. Its
// grace starts: no lease expires before agents had a full lease period to
// reach this server (see Grace). Every query the store fails for want of a
// working database (store.Trouble) extends the grace the same way.
func New(cfg Config, s *store.Store, fx Effects, now func() time.Time, logger *slog.Logger) *Lifecycle {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Lifecycle{cfg: cfg, store: s, fx: fx, now: now, log: logger}
	l.graceUntil = now().Add(cfg.LeaseTTL)
	s.OnTrouble(func(err error) { l.StoreTrouble(l.now(), err) })
	return l
}

// The kinds of refusal. Errors returned by Lifecycle answer errors.Is for
// one of them when the change was refused (store errors, such as an
// unreachable database, pass through wrapped).
var (
	// ErrNotFound: no such job, run or pipeline. It is store.ErrNotFound.
	ErrNotFound = store.ErrNotFound
	// ErrInvalidTransition: the job or run is not in a state that allows
	// the change (a report of success on a failed attempt, a cancel of a
	// finished job, a retry of a successful one, a stop of a finished run).
	ErrInvalidTransition = errors.New("invalid transition")
	// ErrNotLeased: the attempt reported on is not leased to the agent
	// reporting.
	ErrNotLeased = errors.New("attempt not leased to this agent")
	// ErrInvalidArgument: part of the request is malformed; the message
	// names the field.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrFailedPrecondition: the server cannot do it as it stands (a
	// pipeline with a source on a server without git).
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrForbidden: the caller may not act on this job attempt (an agent
	// writing into the log of an attempt it does not hold).
	ErrForbidden = errors.New("forbidden")
)

// refusal is an error of one kind with its own message.
type refusal struct {
	kind error
	msg  string
}

func (e *refusal) Error() string { return e.msg }
func (e *refusal) Unwrap() error { return e.kind }

func refuse(kind error, format string, args ...any) error {
	return &refusal{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// Message is the message of the refusal err carries, without the context
// the store wrapped around it (it names the job or run itself), or err's
// text when it carries none.
func Message(err error) string {
	var r *refusal
	if errors.As(err, &r) {
		return r.msg
	}
	return err.Error()
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// status is the status of a stored job.
func status(j *store.Job) jobstate.Status {
	s, err := jobstate.Parse(j.Status)
	if err != nil {
		return 0
	}
	return s
}

// runStatus is the status of a stored run.
func runStatus(r *store.PipelineRun) jobstate.Status {
	st, err := jobstate.Parse(r.Status)
	if err != nil {
		return jobstate.Pending
	}
	return st
}

func nonNil(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
