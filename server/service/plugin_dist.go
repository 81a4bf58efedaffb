package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobstep"
	"github.com/go-arcade/arcade/core/pipeline"
	"github.com/go-arcade/arcade/core/plugininput"
	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/server/lifecycle"
	"github.com/go-arcade/arcade/server/secrets"
	"github.com/go-arcade/arcade/server/store"
)

// pluginChunk is how many bytes of a module one DownloadPlugin message
// carries.
const pluginChunk = 256 << 10

// UsePlugins makes the plugins of m usable as job steps: jobs name them,
// agents fetch them. A job whose plugins still compile (the server loads
// its plugins after it starts) stays in the queue until they are done.
// Call it before serving.
func (s *Service) UsePlugins(m *host.Manager) {
	s.plugins = m
	s.dispatch.HoldBack(s.compilingPlugins)
	m.Subscribe(func(e host.Event) {
		if e.Type != host.EventCallFailed {
			s.dispatch.WakeLocal() // a held job may go now
		}
	})
}

// compilingPlugins reports whether a job uses a plugin still compiling.
func (s *Service) compilingPlugins(j *store.Job) bool {
	for _, name := range j.Plugins {
		if s.plugins.Compiling(name) {
			return true
		}
	}
	return false
}

// module returns the module serving now under name, checked against the
// version a step asks for ("" for any).
func (s *Service) module(name, version string) (*host.Module, error) {
	if s.plugins == nil {
		return nil, fmt.Errorf("plugin %q is not loaded on this server (no plugins)", name)
	}
	p, err := s.plugins.Get(name)
	if err != nil {
		return nil, fmt.Errorf("plugin %q is not loaded on this server: %w", name, err)
	}
	mod, err := p.Module()
	if err != nil {
		return nil, fmt.Errorf("plugin %q is not loaded on this server: %w", name, err)
	}
	if version != "" && mod.Version != version {
		return nil, fmt.Errorf("plugin %q is at version %s on this server, not %s", name, mod.Version, version)
	}
	if jobstep.DefaultFunction(mod.Kind) == "" {
		return nil, fmt.Errorf("plugin %q is a %s plugin, which does not run as a job step (ci, cd, security or custom do)", name, mod.Kind)
	}
	return mod, nil
}

// checkStepPlugins refuses steps whose plugins the server does not serve,
// naming the field (steps[1].uses).
func (s *Service) checkStepPlugins(prefix string, steps []*agentv1.Step) error {
	for i, st := range steps {
		mod, name, err := s.servingStep(st)
		if err != nil {
			return invalid(fmt.Sprintf("%s[%d].uses", prefix, i), "%v", err)
		}
		if mod == nil {
			continue
		}
		if fn := st.GetFunction(); fn != "" && !functionOf(mod, fn) {
			return invalid(fmt.Sprintf("%s[%d].function", prefix, i), "%s plugin %q has no function %q", mod.Kind, name, fn)
		}
		if errs := plugininput.Check("param of plugin "+name, mod.Params, st.GetWith()); len(errs) > 0 {
			return invalid(fmt.Sprintf("%s[%d].with.%s", prefix, i, errs[0].Key), "%s", plugininput.Join(errs))
		}
	}
	return nil
}

// servingStep is the module serving a plugin step now, with the plugin's
// name; nil without an error for a step that is no plugin step, or whose
// plugin still compiles (checked when its job is handed out, once
// compiled). The error says why the step's uses: is refused.
func (s *Service) servingStep(st *agentv1.Step) (*host.Module, string, error) {
	if st.GetUses() == "" {
		return nil, "", nil
	}
	name, version, err := jobstep.ParseUses(st.GetUses())
	if err != nil {
		return nil, "", err
	}
	if s.plugins != nil && s.plugins.Compiling(name) {
		return nil, name, nil
	}
	mod, err := s.module(name, version)
	if err != nil {
		return nil, name, err
	}
	return mod, name, nil
}

// functionOf reports whether a step may call fn on a plugin of mod's kind.
func functionOf(mod *host.Module, fn string) bool {
	kind, _ := host.ParseKind(mod.Kind)
	for _, f := range host.RequiredFunctions(kind) {
		if f == fn {
			return true
		}
	}
	return false
}

// stepChecker checks a new run's plugin steps against the plugins served
// now (lifecycle.StepChecker): a pipeline is checked against its plugins'
// declared inputs when it is stored, and a plugin swapped since may refuse
// what it gives. Such a run ends FAILED at once, naming the job, the step,
// the plugin's version and the key, rather than after its earlier jobs ran.
type stepChecker struct{ s *Service }

func (c stepChecker) CheckSteps(spec *jobv1.PipelineDetail) string {
	for _, st := range spec.GetStages() {
		for _, j := range st.GetJobs() {
			for i, step := range pipeline.Steps(j) {
				if problem := c.s.checkRunStep(step); problem != "" {
					return fmt.Sprintf("job %s step %d (%s): %s", j.GetName(), i+1, jobstep.Name(step, i), problem)
				}
			}
		}
	}
	return ""
}

// checkRunStep is what the plugins served now refuse in one step ("" for
// nothing). A plugin still compiling is checked when the job is handed out.
func (s *Service) checkRunStep(st *agentv1.Step) string {
	mod, name, err := s.servingStep(st)
	if err != nil {
		return err.Error()
	}
	if mod == nil {
		return ""
	}
	if fn := st.GetFunction(); fn != "" && !functionOf(mod, fn) {
		return fmt.Sprintf("%s plugin %q %s has no function %q; update the pipeline", mod.Kind, name, mod.Version, fn)
	}
	if errs := plugininput.Check("param", mod.Params, st.GetWith()); len(errs) > 0 {
		return fmt.Sprintf("plugin %s %s refuses its with: %s (the plugin changed since the pipeline was stored; update the pipeline)", name, mod.Version, plugininput.Join(errs))
	}
	return ""
}

// resolvePlugins describes the modules a job's steps use as the server
// serves them now: a plugin swapped on the server is what the next job gets.
func (s *Service) resolvePlugins(steps []*agentv1.Step) ([]*agentv1.PluginModule, error) {
	var out []*agentv1.PluginModule
	seen := map[string]bool{}
	for i, st := range steps {
		if st.GetUses() == "" {
			continue
		}
		name, version, err := jobstep.ParseUses(st.GetUses())
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", i+1, err)
		}
		mod, err := s.module(name, version)
		if err != nil {
			return nil, fmt.Errorf("step %d (%s): %w", i+1, jobstep.Name(st, i), err)
		}
		// The plugin may have been swapped since the pipeline was stored:
		// its with: is checked against the version serving now.
		if errs := plugininput.Check("param", mod.Params, st.GetWith()); len(errs) > 0 {
			return nil, fmt.Errorf("step %d (%s): plugin %s %s: with: %s", i+1, jobstep.Name(st, i), name, mod.Version, plugininput.Join(errs))
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		s.handed.remember(mod)
		out = append(out, moduleProto(mod))
	}
	return out, nil
}

func moduleProto(m *host.Module) *agentv1.PluginModule {
	pm := &agentv1.PluginModule{
		Name: m.Name, Version: m.Version, Sha256: m.SHA256, SizeBytes: int64(len(m.Data)), Kind: m.Kind,
		Config: m.Config, AllowedHosts: m.AllowedHosts, MemoryLimitMib: int32(m.MemoryLimitMiB), Signature: m.Signature,
	}
	if m.Timeout > 0 {
		pm.Timeout = durationpb.New(m.Timeout)
	}
	return pm
}

// handOut is a claimed job as its agent receives it, with the plugin modules
// its steps use resolved now. A plugin gone since the job was created fails
// the job (nil is returned).
func (s *Service) handOut(ctx context.Context, j *store.Job) *agentv1.Job {
	job, err := s.agentJob(j)
	if err == nil {
		err = s.addStoredSecrets(ctx, j, job)
	}
	if err == nil {
		err = s.addCheckout(ctx, j, job)
	}
	if err == nil {
		err = s.addPipelineData(ctx, j, job)
	}
	if err == nil && len(job.GetSteps()) > 0 {
		job.Plugins, err = s.resolvePlugins(job.GetSteps())
		if err == nil {
			err = s.addPluginSecrets(ctx, j, job)
		}
	}
	if err != nil {
		s.life.FailClaimed(ctx, j, err.Error())
		return nil
	}
	return job
}

// addStoredSecrets resolves the stored secrets a job references, in the
// scopes its pipeline and run may use, as they are now (a rotated value is
// the new one; a deleted one fails the job with the reason). The job's own
// secrets of the same name win.
func (s *Service) addStoredSecrets(ctx context.Context, j *store.Job, job *agentv1.Job) error {
	if len(j.SecretRefs) == 0 {
		return nil
	}
	vals, err := s.secrets.Resolve(ctx, secrets.Scope{Pipeline: j.PipelineID, RunID: j.RunID}, j.SecretRefs...)
	if err != nil {
		var missing *secrets.MissingError
		if errors.As(err, &missing) && j.PipelineID != "" {
			if name := j.Env["ARCADE_PIPELINE"]; name != "" {
				missing.Scope.Pipeline = name // for people: the name, not the id
			}
		}
		return err
	}
	if job.Secrets == nil {
		job.Secrets = make(map[string]string, len(vals))
	}
	for k, v := range vals {
		if _, own := job.Secrets[k]; !own {
			job.Secrets[k] = v
		}
	}
	return nil
}

// addPluginSecrets sends the config values plugins.yaml takes from stored
// secrets with the modules that have some, except to jobs of runs of
// untrusted origin (they get no secrets at all).
func (s *Service) addPluginSecrets(ctx context.Context, j *store.Job, job *agentv1.Job) error {
	var with []*agentv1.PluginModule
	for _, pm := range job.GetPlugins() {
		if m := s.handed.get(pm.GetName(), pm.GetSha256()); m != nil && len(m.SecretConfig) > 0 {
			pm.SecretConfig = m.SecretConfig
			with = append(with, pm)
		}
	}
	if len(with) == 0 || j.RunID == "" {
		return nil
	}
	r, err := s.store.GetRun(ctx, j.RunID)
	if err != nil {
		return fmt.Errorf("plugin credentials: %w", err)
	}
	if r.UntrustedOrigin {
		for _, pm := range with {
			pm.SecretConfig = nil
		}
	}
	return nil
}

// DownloadPlugin implements AgentService.DownloadPlugin: the module serving
// now under the name, when its sha256 is the one asked for.
func (a *AgentServer) DownloadPlugin(req *agentv1.DownloadPluginRequest, stream grpc.ServerStreamingServer[agentv1.DownloadPluginResponse]) error {
	s := a.s
	if err := requireID("name", req.GetName()); err != nil {
		return err
	}
	want := strings.ToLower(req.GetSha256())
	mod, err := s.module(req.GetName(), "")
	if want != "" && (err != nil || want != mod.SHA256) {
		// A version handed out with a job shortly before a swap.
		if old := s.handed.get(req.GetName(), want); old != nil {
			mod, err = old, nil
		} else if err == nil {
			return grpcstatus.Errorf(codes.NotFound, "sha256: plugin %q serves %s (version %s) now, not %s", mod.Name, mod.SHA256, mod.Version, want)
		}
	}
	if err != nil {
		return grpcstatus.Errorf(codes.NotFound, "name: %v", err)
	}
	first := &agentv1.DownloadPluginResponse{Module: moduleProto(mod)}
	data := mod.Data
	n := min(len(data), pluginChunk)
	first.Data, data = data[:n], data[n:]
	if err := stream.Send(first); err != nil {
		return err
	}
	for len(data) > 0 {
		n := min(len(data), pluginChunk)
		if err := stream.Send(&agentv1.DownloadPluginResponse{Data: data[:n]}); err != nil {
			return err
		}
		data = data[n:]
	}
	s.log.Debug("plugin module sent", "plugin", mod.Name, "version", mod.Version, "sha256", mod.SHA256)
	return nil
}

// handedModules keeps the last modules handed out with jobs, so that an
// agent fetching the version its job names still gets it when the operator
// swapped the plugin between the hand-out and the fetch.
type handedModules struct {
	mu   sync.Mutex
	mods []*host.Module // oldest first, one per name and sha256
}

// maxHanded bounds the modules kept besides the ones serving.
const maxHanded = 8

func (h *handedModules) remember(m *host.Module) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.mods = slices.DeleteFunc(h.mods, func(o *host.Module) bool { return o.Name == m.Name && o.SHA256 == m.SHA256 })
	h.mods = append(h.mods, m)
	if len(h.mods) > maxHanded {
		h.mods = slices.Delete(h.mods, 0, len(h.mods)-maxHanded)
	}
}

func (h *handedModules) get(name, sha256 string) *host.Module {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.mods {
		if m.Name == name && m.SHA256 == sha256 {
			return m
		}
	}
	return nil
}

// storedSteps reads a stored job's steps, which this server encoded.
func storedSteps(j *store.Job) []*agentv1.Step {
	steps, _ := lifecycle.DecodeSteps(j.Steps)
	return steps
}
