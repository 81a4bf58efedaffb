package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-arcade/arcade/agent/executor"
	"github.com/go-arcade/arcade/agent/executor/container"
	"github.com/go-arcade/arcade/agent/jobtrack"
	"github.com/go-arcade/arcade/agent/sysinfo"
	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
)

// DefaultEngineCheck is how often the agent asks its container engine
// whether it still answers, to keep its container-runtime labels true.
const DefaultEngineCheck = 5 * time.Second

// engineLabelKeys are the labels that follow the container engine.
var engineLabelKeys = []string{sysinfo.LabelContainerRuntime, sysinfo.LabelContainerRuntimeVersion}

// engineProbe is the engine as sysinfo sees it; nil without one.
func (a *Agent) engineProbe() sysinfo.Engine {
	if a.engine == nil {
		return nil
	}
	return a.engine
}

// executorFor returns the executor of a job: the host shell, or for a job
// with an image a container of it, with its services, started now.
func (a *Agent) executorFor(ctx context.Context, r *jobRun) (executor.Executor, error) {
	job := r.job
	if job.GetImage() == "" {
		return executor.Shell{}, nil
	}
	if a.engine == nil {
		return nil, &container.Error{Reason: executor.ReasonContainerSetup,
			Err: fmt.Errorf("cannot run image %q: this agent has no container engine (--container-runtime none)", job.GetImage())}
	}
	opts := job.GetContainer()
	spec := container.Spec{
		AgentID: a.ID(), AgentKey: a.tracker.Key(), JobID: job.GetId(), Attempt: job.GetAttempt(), Image: job.GetImage(),
		Pull: pullPolicy(opts.GetPullPolicy()), CPUs: opts.GetCpus(), MemoryBytes: opts.GetMemoryBytes(),
		Network: opts.GetNetworkMode(), Workspace: r.ws, Scratch: scratchDir(r.ws),
	}
	if name := opts.GetRegistryAuthSecret(); name != "" {
		v, ok := job.GetSecrets()[name]
		if !ok {
			return nil, &container.Error{Reason: executor.ReasonImagePull,
				Err: fmt.Errorf("registry_auth_secret: the job has no secret %q", name)}
		}
		spec.RegistryAuth = v
	}
	for _, s := range opts.GetServices() {
		spec.Services = append(spec.Services, container.Service{Name: s.GetName(), Image: s.GetImage(), Env: s.GetEnv(),
			Command: s.GetCommand(), Port: int(s.GetReadyPort()), HealthCommand: s.GetReadyCommand(),
			ReadyTimeout: s.GetReadyTimeout().AsDuration()})
	}
	return a.engine.Start(ctx, spec, r.ship.add)
}

func pullPolicy(p agentv1.PullPolicy) string {
	switch p {
	case agentv1.PullPolicy_PULL_POLICY_ALWAYS:
		return container.PullAlways
	case agentv1.PullPolicy_PULL_POLICY_NEVER:
		return container.PullNever
	}
	return container.PullIfNotPresent
}

// containerReason is the typed reason of an error setting up a container.
func containerReason(err error) executor.Reason {
	if r := container.ReasonOf(err); r != executor.ReasonNone {
		return r
	}
	return executor.ReasonContainerSetup
}

// sweepLeftovers is the job tracker's hook (see jobtrack.Hook): the
// scratch directories of the jobs an earlier life of this agent left, and
// what it left in the engine (objects labelled with the tracker's key).
// Without an answering engine nothing there is removed now; the agent
// removes its objects (by its id) once the engine answers.
func (a *Agent) sweepLeftovers(ctx context.Context, key string, left []jobtrack.Leftover) error {
	var errs []error
	for _, l := range left {
		if l.Workspace != "" {
			if err := os.RemoveAll(scratchDir(l.Workspace)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if a.engine == nil {
		return errors.Join(errs...)
	}
	if _, err := a.engine.Version(ctx); err != nil {
		return errors.Join(errs...)
	}
	n, err := a.engine.RemoveLeftovers(ctx, container.LabelAgentKey, key, nil)
	if n > 0 {
		a.log.Info("removed leftovers of an earlier life from the container engine", "objects", n)
	}
	return errors.Join(append(errs, err)...)
}

// removeLeftovers removes what an earlier life of this agent left in the
// engine (containers, networks, volumes labelled with its id), but the
// objects of jobs it runs now.
func (a *Agent) removeLeftovers(ctx context.Context) {
	a.mu.Lock()
	answered := len(a.engineLabels) > 0
	a.mu.Unlock()
	if a.engine == nil || !answered {
		return
	}
	id := a.ID()
	running := map[string]bool{}
	a.mu.Lock()
	for id, rj := range a.jobs {
		running[id+"/"+strconv.Itoa(int(rj.attempt))] = true
	}
	a.mu.Unlock()
	n, err := a.engine.RemoveLeftovers(ctx, container.LabelAgent, id, func(jobID, attempt string) bool { return running[jobID+"/"+attempt] })
	if err != nil && !errors.Is(err, context.Canceled) {
		a.log.Warn("remove leftover containers", "err", err)
	}
	if n > 0 {
		a.log.Info("removed leftovers of an earlier life from the container engine", "objects", n)
	}
}

// engineSettle is how long an engine that was lost under a job must answer
// again before the agent offers container jobs anew: an engine that is
// shutting down still answers for a moment.
const engineSettle = 3 * time.Second

// watchEngine keeps the container-runtime labels true: when the engine
// goes away or comes back (or changes version), the agent updates its
// labels on the server; when it comes back, leftovers are removed.
func (a *Agent) watchEngine(ctx context.Context) {
	if a.engine == nil {
		return
	}
	every := a.cfg.EngineCheck
	if every <= 0 {
		every = DefaultEngineCheck
	}
	for sleep(ctx, every) {
		a.checkEngine(ctx)
	}
}

// engineLost is called when a job lost the engine: the agent stops
// offering container jobs at once, before the job's report lets the
// server hand its retry out, until the engine answers again for
// engineSettle.
func (a *Agent) engineLost(ctx context.Context) {
	a.mu.Lock()
	a.engineSuspect, a.engineStable = true, time.Time{}
	a.mu.Unlock()
	a.checkEngine(ctx)
}

// checkEngine asks the engine and, when its labels changed, tells the
// server.
func (a *Agent) checkEngine(ctx context.Context) {
	a.checkMu.Lock()
	defer a.checkMu.Unlock()
	now := sysinfo.EngineLabels(ctx, a.engine)
	a.mu.Lock()
	before := a.engineLabels
	switch {
	case len(now) == 0:
		a.engineStable = time.Time{}
	case a.engineStable.IsZero():
		a.engineStable = time.Now()
	}
	if a.engineSuspect {
		if len(now) > 0 && time.Since(a.engineStable) < engineSettle {
			now = map[string]string{}
		} else if len(now) > 0 {
			a.engineSuspect = false
		}
	}
	a.mu.Unlock()
	if maps.Equal(before, now) || ctx.Err() != nil {
		return
	}
	id, _ := a.identity()
	req := &agentv1.UpdateLabelsRequest{AgentId: id, Labels: map[string]string{}}
	for _, k := range engineLabelKeys {
		if _, set := a.cfg.Labels[k]; set {
			continue // the operator's word wins
		}
		if v, ok := now[k]; ok {
			req.Labels[k] = v
		} else if _, had := before[k]; had {
			req.RemoveKeys = append(req.RemoveKeys, k)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err := a.rpc.UpdateLabels(cctx, req)
	cancel()
	if err != nil {
		a.log.Warn("update the container-runtime labels", "err", err)
		return // tried again at the next check
	}
	a.mu.Lock()
	a.engineLabels = now
	a.mu.Unlock()
	if len(now) > 0 {
		a.log.Info("container engine answers; container jobs offered", "version", now[sysinfo.LabelContainerRuntimeVersion])
		if len(before) == 0 {
			a.removeLeftovers(ctx)
		}
	} else {
		a.log.Warn("container engine gone; container jobs no longer offered", "removed", strings.Join(req.RemoveKeys, ","))
	}
}
