package agent

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/go-arcade/arcade/agent/executor"
	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/core/jobstep"
	"github.com/go-arcade/arcade/core/stepresult"
	"github.com/go-arcade/arcade/host"
)

// WorkspaceGuest is where a plugin step sees the job workspace.
const WorkspaceGuest = "/workspace"

// stepsRun is what running a job's steps needs.
type stepsRun struct {
	a    *Agent
	job  *agentv1.Job
	ws   string
	env  map[string]string
	ship *shipper
	// exec runs the command steps; contain holds their processes on the
	// host (the shell executor).
	exec    executor.Executor
	contain executor.Containment
	// deadline is the job's, zero without a timeout.
	deadline time.Time
	// jr collects the plugin steps' outputs.
	jr *jobRun
}

// runSteps runs the job's steps in order in one workspace; the first that
// fails ends the job. The message, when set, says which step failed and why,
// for the job's message.
func (a *Agent) runSteps(ctx context.Context, jr *jobRun) (executor.Result, string) {
	job := jr.job
	r := &stepsRun{a: a, job: job, ws: jr.ws, env: jr.env, ship: jr.ship, exec: jr.exec, contain: jr.contain, jr: jr}
	start := time.Now()
	if d := job.GetTimeout().AsDuration(); d > 0 {
		r.deadline = start.Add(d)
	}
	steps := job.GetSteps()
	for i, st := range steps {
		name := jobstep.Name(st, i)
		label := fmt.Sprintf("step %d/%d %q", i+1, len(steps), name)
		what := "commands"
		if st.GetUses() != "" {
			what = "uses " + st.GetUses()
		}
		r.system("%s started (%s)", label, what)
		began := time.Now()
		var res executor.Result
		var msg string
		if st.GetUses() != "" {
			res, msg = r.pluginStep(ctx, st, i, name)
		} else {
			res, msg = r.commandStep(ctx, st)
		}
		took := time.Since(began).Round(time.Millisecond)
		if res.Outcome == executor.Succeeded {
			r.system("%s succeeded in %s", label, took)
			continue
		}
		if msg == "" {
			msg = outcomeMessage(res)
		}
		r.system("%s %s in %s: %s", label, res.Outcome, took, msg)
		if i+1 < len(steps) {
			r.system("%d later step(s) not run", len(steps)-i-1)
		}
		res.Duration = time.Since(start)
		return res, jobstep.Failure(name, msg)
	}
	return executor.Result{Outcome: executor.Succeeded, Duration: time.Since(start)}, ""
}

func outcomeMessage(res executor.Result) string {
	switch {
	case res.Err != nil && res.ExitCode < 0:
		return res.Err.Error()
	case res.Outcome == executor.Failed:
		return fmt.Sprintf("exit status %d", res.ExitCode)
	case res.Err != nil:
		return res.Err.Error()
	}
	return res.Outcome.String()
}

func (r *stepsRun) system(format string, args ...any) {
	r.ship.add(executor.Line{Stream: executor.System, Text: fmt.Sprintf(format, args...), Time: time.Now()})
}

// remaining is the time left before the job's deadline (0: none).
func (r *stepsRun) remaining() (time.Duration, bool) {
	if r.deadline.IsZero() {
		return 0, true
	}
	left := time.Until(r.deadline)
	return left, left > 0
}

// commandStep runs a step's commands. A step timeout shorter than what the
// job has left fails the step; the job's own timeout times the job out.
func (r *stepsRun) commandStep(ctx context.Context, st *agentv1.Step) (executor.Result, string) {
	left, ok := r.remaining()
	if !ok {
		return executor.Result{Outcome: executor.TimedOut, ExitCode: -1, Err: context.DeadlineExceeded}, ""
	}
	timeout, stepLimited := left, false
	if d := st.GetTimeout().AsDuration(); d > 0 && (timeout == 0 || d < timeout) {
		timeout, stepLimited = d, true
	}
	res := r.exec.Run(ctx, executor.Spec{Commands: st.GetCommands(), Env: r.env, Dir: r.ws, Timeout: timeout, Contain: r.contain}, r.ship.add)
	if res.Outcome == executor.TimedOut && stepLimited {
		return executor.Result{Outcome: executor.Failed, ExitCode: res.ExitCode, Err: res.Err, Duration: res.Duration},
			fmt.Sprintf("timed out after %s", timeout)
	}
	if res.Reason != executor.ReasonNone && res.Err != nil {
		return res, res.Err.Error()
	}
	return res, ""
}

// pluginStep fetches, loads and calls the plugin of a step, the workspace
// mounted read-write at /workspace, and turns its response into the step's
// outcome.
func (r *stepsRun) pluginStep(ctx context.Context, st *agentv1.Step, index int, name string) (executor.Result, string) {
	failed := func(format string, args ...any) (executor.Result, string) {
		return executor.Result{Outcome: executor.Failed, ExitCode: -1}, fmt.Sprintf(format, args...)
	}
	a := r.a
	if a.runner == nil {
		return failed("this agent runs no plugin steps (plugins: -)")
	}
	pluginName, _, err := jobstep.ParseUses(st.GetUses())
	if err != nil {
		return failed("uses: %v", err)
	}
	var mod *agentv1.PluginModule
	for _, m := range r.job.GetPlugins() {
		if m.GetName() == pluginName {
			mod = m
		}
	}
	if mod == nil {
		return failed("the server sent no module for plugin %q", pluginName)
	}
	fn := st.GetFunction()
	if fn == "" {
		fn = jobstep.DefaultFunction(mod.GetKind())
	}
	if fn == "" {
		return failed("plugin %s is a %s plugin, which does not run as a step", pluginName, mod.GetKind())
	}
	data, err := a.plugins.Get(ctx, mod)
	if err != nil {
		if ctx.Err() != nil {
			return executor.Result{Outcome: executor.Cancelled, ExitCode: -1, Err: context.Cause(ctx)}, ""
		}
		return failed("%v", err)
	}

	spec := host.Spec{Name: pluginName, Kind: mod.GetKind(), Version: mod.GetVersion(), SHA256: mod.GetSha256(),
		Config: pluginConfig(mod)}
	spec.Grants.AllowedHosts = mod.GetAllowedHosts()
	spec.Grants.AllowedPaths = []host.PathGrant{{Host: r.ws, Guest: WorkspaceGuest, Mode: "rw"}}
	spec.Grants.MemoryLimitMiB = uint32(max(mod.GetMemoryLimitMib(), 0))
	spec.Grants.MaxInstances = 1
	timeout := mod.GetTimeout().AsDuration()
	if d := st.GetTimeout().AsDuration(); d > 0 && (timeout <= 0 || d < timeout) {
		timeout = d // a step may ask for less than the operator grants, never more
	}
	spec.Grants.Timeout = host.Duration(timeout)

	loaded, err := a.runner.Load(ctx, spec, data)
	if err != nil {
		if ctx.Err() != nil {
			return executor.Result{Outcome: executor.Cancelled, ExitCode: -1, Err: context.Cause(ctx)}, ""
		}
		return failed("%v", err)
	}
	defer loaded.Close()
	md := loaded.Metadata()
	r.system("plugin %s %s (%s, sha256 %s), function %s", pluginName, md.GetVersion(), mod.GetKind(), short(mod.GetSha256()), fn)

	input, err := r.pluginInput(st, index, name, mod.GetKind(), fn)
	if err != nil {
		return failed("encode the plugin's input: %v", err)
	}

	callCtx := ctx
	if left, ok := r.remaining(); !ok {
		return executor.Result{Outcome: executor.TimedOut, ExitCode: -1, Err: context.DeadlineExceeded}, ""
	} else if left > 0 {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithTimeout(ctx, left)
		defer cancel()
	}
	logger := slog.New(&stepLog{ship: r.ship})
	out, err := loaded.Call(host.WithLogger(callCtx, logger), fn, input)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return executor.Result{Outcome: executor.Cancelled, ExitCode: -1, Err: context.Cause(ctx)}, ""
		case callCtx.Err() != nil:
			return executor.Result{Outcome: executor.TimedOut, ExitCode: -1, Err: context.DeadlineExceeded}, ""
		}
		r.ship.addLevel(executor.Line{Stream: executor.Stderr, Text: err.Error(), Time: time.Now()}, agentv1.LogLevel_LOG_LEVEL_ERROR)
		return failed("%v", err)
	}
	resp := &pluginv1.StepResponse{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(out, resp); err != nil {
		return failed("plugin %s: unreadable response: %v", pluginName, err)
	}
	r.logResponse(resp)
	if stepresult.Passed(resp) {
		if len(resp.GetOutputs()) > 0 && r.jr != nil {
			if r.jr.pluginOutputs == nil {
				r.jr.pluginOutputs = map[string]string{}
			}
			maps.Copy(r.jr.pluginOutputs, resp.GetOutputs())
		}
		return executor.Result{Outcome: executor.Succeeded}, ""
	}
	return failed("%s", stepresult.Failure(pluginName, resp))
}

// pluginInput is the request of the kind's function: the step's context
// and its with: parameters.
func (r *stepsRun) pluginInput(st *agentv1.Step, index int, name, kind, fn string) ([]byte, error) {
	env := maps.Clone(r.env)
	env["ARCADE_WORKSPACE"] = WorkspaceGuest
	sc := &pluginv1.StepContext{
		JobId: r.job.GetId(), JobName: r.job.GetName(), Step: name, Workspace: WorkspaceGuest, Env: env,
		Attempt: r.job.GetAttempt(), AgentId: r.a.ID(),
		PipelineId: r.env["ARCADE_PIPELINE_ID"], PipelineRunId: r.env["ARCADE_RUN_ID"], Stage: r.env["ARCADE_STAGE"],
		Repository: r.env["ARCADE_REPOSITORY"], Ref: r.env["ARCADE_REF"], Commit: r.env["ARCADE_COMMIT"],
	}
	return protojson.Marshal(stepresult.Request(kind, fn, sc, st.GetWith()))
}

// logResponse writes the plugin's verdict into the job's log, as
// stepresult renders it.
func (r *stepsRun) logResponse(resp *pluginv1.StepResponse) {
	now := time.Now()
	for _, l := range stepresult.Lines(resp) {
		r.ship.addLevel(executor.Line{Stream: executor.Stdout, Text: l.Text, Time: now}, severityLevel(l.Severity))
	}
}

func severityLevel(s pluginv1.Severity) agentv1.LogLevel {
	switch s {
	case pluginv1.Severity_SEVERITY_MEDIUM:
		return agentv1.LogLevel_LOG_LEVEL_WARN
	case pluginv1.Severity_SEVERITY_HIGH, pluginv1.Severity_SEVERITY_CRITICAL:
		return agentv1.LogLevel_LOG_LEVEL_ERROR
	}
	return agentv1.LogLevel_LOG_LEVEL_INFO
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

// stepLog is a slog.Handler writing a plugin's log lines, stdout and stderr
// into the job's log through the shipper, which masks secrets.
type stepLog struct{ ship *shipper }

func (h *stepLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *stepLog) Handle(_ context.Context, rec slog.Record) error {
	stream := executor.Stdout
	diagnostic := false
	rec.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "stream":
			if a.Value.String() == "stderr" {
				stream = executor.Stderr
			}
		case "err":
			diagnostic = true // the host's own note of a failed call; the step reports it
		}
		return true
	})
	if diagnostic {
		return nil
	}
	level := agentv1.LogLevel_LOG_LEVEL_INFO
	switch {
	case rec.Level >= slog.LevelError:
		level = agentv1.LogLevel_LOG_LEVEL_ERROR
	case rec.Level >= slog.LevelWarn:
		level = agentv1.LogLevel_LOG_LEVEL_WARN
	case rec.Level < slog.LevelInfo:
		level = agentv1.LogLevel_LOG_LEVEL_DEBUG
	}
	t := rec.Time
	if t.IsZero() {
		t = time.Now()
	}
	for _, line := range strings.Split(strings.TrimRight(rec.Message, "\n"), "\n") {
		h.ship.addLevel(executor.Line{Stream: stream, Text: line, Time: t}, level)
	}
	return nil
}

func (h *stepLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *stepLog) WithGroup(string) slog.Handler      { return h }

// pluginConfig is a module's config with the values the server took from
// stored secrets (masked in the job's log like the job's secrets).
func pluginConfig(mod *agentv1.PluginModule) map[string]string {
	if len(mod.GetSecretConfig()) == 0 {
		return mod.GetConfig()
	}
	out := maps.Clone(mod.GetConfig())
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, mod.GetSecretConfig())
	return out
}
