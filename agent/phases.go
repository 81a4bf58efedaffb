package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/go-arcade/arcade/agent/executor"
	"github.com/go-arcade/arcade/agent/executor/container"
	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	"github.com/go-arcade/arcade/internal/confine"
)

// The phases of a job on the agent, in the one order they run:
//
//	checkout → inputs → cache restore → steps → outputs → cache save → artifact upload
//
// then the final report. Each phase says where it runs (on the host, or
// where the job's executor runs its steps: the host or the job's
// container) and the typed reason it fails with. A phase whose run is nil
// is not built yet and is passed over; later work plugs in by filling it in
// jobPhases, without reshaping the sequence. The first phase that fails
// ends the job (later phases marked afterFailure still run, none today).

// Where says where a phase runs.
type Where string

const (
	// OnHost: in the agent, over the workspace on the host.
	OnHost Where = "host"
	// InExecutor: where the job's executor runs steps (its container for a
	// job with an image, else the host).
	InExecutor Where = "executor"
)

// phase is one phase of a job.
type phase struct {
	name   string
	where  Where
	reason agentv1.EndReason
	// onlyAfterSuccess: the phase runs only when every phase before it
	// succeeded (artifacts are kept from successful jobs only).
	onlyAfterSuccess bool
	// run does the phase's work; nil: not built yet.
	run func(ctx context.Context, a *Agent, r *jobRun) phaseResult
}

// phaseResult is how a phase ended. The zero value is success.
type phaseResult struct {
	// res is set when the phase failed or the job stopped (cancelled,
	// timed out) in it.
	res *executor.Result
	// message says why, for the job's message; "" lets the result say it.
	message string
	// reason overrides the phase's reason (executor.Reason of the result
	// is mapped too).
	reason agentv1.EndReason
}

// jobPhases is the order of a job's phases, defined once.
var jobPhases = []phase{
	{name: "checkout", where: OnHost, reason: agentv1.EndReason_END_REASON_CHECKOUT, run: checkoutPhase},
	{name: "inputs", where: OnHost, reason: agentv1.EndReason_END_REASON_INPUTS, run: inputsPhase},
	{name: "cache restore", where: OnHost, reason: agentv1.EndReason_END_REASON_CACHE_RESTORE, run: cacheRestorePhase},
	{name: "steps", where: InExecutor, reason: agentv1.EndReason_END_REASON_STEP_FAILED, run: stepsPhase},
	{name: "outputs", where: OnHost, reason: agentv1.EndReason_END_REASON_OUTPUTS, run: outputsPhase},
	{name: "cache save", where: OnHost, reason: agentv1.EndReason_END_REASON_CACHE_SAVE, run: cacheSavePhase},
	{name: "artifact upload", where: OnHost, reason: agentv1.EndReason_END_REASON_ARTIFACT_UPLOAD, onlyAfterSuccess: true, run: artifactPhase},
}

// jobRun is one attempt of a job as its phases see it.
type jobRun struct {
	job  *agentv1.Job
	ws   string // the workspace on the host
	env  map[string]string
	ship *shipper
	log  interface {
		Warn(string, ...any)
		Info(string, ...any)
	}

	// exec runs the job's command steps; set by the steps phase.
	exec executor.Executor
	// contain holds the job's processes on the host (the agent's job
	// tracker); the shell executor puts each step in it.
	contain executor.Containment

	// The outcome so far: success until a phase fails.
	result  executor.Result
	message string
	reason  agentv1.EndReason
	failed  bool

	arts []*agentv1.Artifact

	// pluginOutputs are what the plugin steps set; outputs what the job
	// reports (declared ones), secretOutputs those holding a secret.
	pluginOutputs map[string]string
	outputs       map[string]string
	secretOutputs []string

	// cacheKey is the job's cache key filled in; cacheHit is set when an
	// entry of that key was restored (nothing to save).
	cacheKey string
	cacheHit bool
}

// runPhases runs the job's phases in order and leaves the outcome in r.
func (a *Agent) runPhases(ctx context.Context, r *jobRun) {
	start := time.Now()
	r.result = executor.Result{Outcome: executor.Succeeded}
	for _, ph := range jobPhases {
		if ph.run == nil || (ph.onlyAfterSuccess && r.failed) || (r.failed && !ph.onlyAfterSuccess) {
			continue
		}
		pr := ph.run(ctx, a, r)
		if pr.res == nil {
			continue
		}
		r.failed = true
		r.result = *pr.res
		r.message = pr.message
		r.reason = pr.reason
		if r.reason == agentv1.EndReason_END_REASON_UNSPECIFIED {
			r.reason = endReason(pr.res.Reason, ph.reason)
		}
		if r.result.Outcome == executor.Succeeded {
			r.result.Outcome = executor.Failed
		}
		if r.message == "" && pr.res.Err != nil && ph.name != "steps" {
			r.message = fmt.Sprintf("%s: %v", ph.name, pr.res.Err)
		}
	}
	r.result.Duration = time.Since(start)
}

// endReason maps an executor's typed reason to the wire's, def when it has
// none.
func endReason(r executor.Reason, def agentv1.EndReason) agentv1.EndReason {
	switch r {
	case executor.ReasonEngineLost:
		return agentv1.EndReason_END_REASON_ENGINE_LOST
	case executor.ReasonOutOfMemory:
		return agentv1.EndReason_END_REASON_OUT_OF_MEMORY
	case executor.ReasonImagePull:
		return agentv1.EndReason_END_REASON_IMAGE_PULL
	case executor.ReasonServiceNotReady:
		return agentv1.EndReason_END_REASON_SERVICE_NOT_READY
	case executor.ReasonContainerSetup:
		return agentv1.EndReason_END_REASON_CONTAINER_SETUP
	}
	return def
}

// stepsPhase sets up the job's executor (for a job with an image: pulls,
// its network, services and container), runs the commands or steps, and
// ends the executor.
func stepsPhase(ctx context.Context, a *Agent, r *jobRun) phaseResult {
	ex, err := a.executorFor(ctx, r)
	if err != nil {
		res := executor.Result{Outcome: executor.Failed, ExitCode: -1, Err: err, Reason: containerReason(err)}
		if ctx.Err() != nil && res.Reason != executor.ReasonEngineLost {
			res.Outcome, res.Err = executor.Cancelled, context.Cause(ctx)
		}
		return phaseResult{res: &res, message: err.Error()}
	}
	r.exec = ex
	defer func() {
		if err := ex.Close(context.WithoutCancel(ctx)); err != nil {
			r.log.Warn("close the job's executor", "err", err)
		}
	}()
	var res executor.Result
	var msg string
	if len(r.job.GetSteps()) > 0 {
		res, msg = a.runSteps(ctx, r)
	} else {
		spec := executor.Spec{Commands: r.job.GetCommands(), Env: r.env, Dir: r.ws, Timeout: r.job.GetTimeout().AsDuration(), Contain: r.contain}
		res = ex.Run(ctx, spec, r.ship.add)
		if res.Reason != executor.ReasonNone && res.Err != nil {
			msg = res.Err.Error()
		}
	}
	if res.Outcome == executor.Succeeded {
		return phaseResult{}
	}
	if cj, ok := ex.(*container.Job); ok && res.Outcome == executor.Failed && res.Reason != executor.ReasonEngineLost {
		cj.ServiceLogs(r.ship.add) // what the services said, to tell why
	}
	return phaseResult{res: &res, message: msg}
}

// artifactPhase collects and uploads the job's artifacts. An artifact that
// cannot be stored, after retries, fails the job with "artifact PATH not
// stored: REASON".
func artifactPhase(ctx context.Context, a *Agent, r *jobRun) phaseResult {
	if len(r.job.GetArtifacts().GetPaths()) == 0 {
		return phaseResult{}
	}
	log := a.log.With("job", r.job.GetId(), "attempt", r.job.GetAttempt())
	note := func(text string) { r.ship.add(executor.Line{Stream: executor.System, Text: text, Time: time.Now()}) }
	// Through the confined workspace: no name or link a job left leads out.
	dir, err := confine.OpenReadOnly(r.ws)
	if err != nil {
		log.Warn("open workspace for artifacts", "err", err)
		note(fmt.Sprintf("artifacts not collected: %v", err))
		return phaseResult{}
	}
	defer dir.Close()
	r.arts = a.collectArtifacts(log, dir, r.job.GetArtifacts(), note)
	if err := a.uploadArtifacts(context.WithoutCancel(ctx), log, r.job, dir, r.arts, r.ship); err != nil {
		r.arts = nil
		return phaseResult{res: &executor.Result{Outcome: executor.Failed, Err: err}, message: err.Error()}
	}
	return phaseResult{}
}
