package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"

	"github.com/go-arcade/arcade/agent/executor"
	"github.com/go-arcade/arcade/core/registrycred"
	"github.com/go-arcade/arcade/internal/confine"
)

// Pull policies.
const (
	PullIfNotPresent = "if-not-present"
	PullAlways       = "always"
	PullNever        = "never"
)

// Network modes besides the default (a network of the job alone).
const (
	NetworkNone   = "none"
	NetworkHost   = "host"
	NetworkBridge = "bridge"
)

// DefaultReadyTimeout bounds the wait for a service to become ready.
const DefaultReadyTimeout = 60 * time.Second

// Spec describes a job's container.
type Spec struct {
	AgentID string
	// AgentKey identifies the agent's data folder (see LabelAgentKey).
	AgentKey string
	JobID    string
	Attempt  int32

	// Image is the job's image reference.
	Image string
	// Pull is PullIfNotPresent (when empty), PullAlways or PullNever; it
	// applies to the services' images too.
	Pull string
	// RegistryAuth is a registry credential: a docker config JSON
	// ({"auths": {HOST: {"auth": base64(user:password)}}}) or
	// "user:password". Never logged.
	RegistryAuth string

	// CPUs limits the container's CPU time (1.5: one and a half CPUs);
	// zero: no limit.
	CPUs float64
	// MemoryBytes limits the container's memory (and swap); zero: none.
	MemoryBytes int64
	// Network is "" (a network of the job alone, with its services),
	// NetworkNone, NetworkHost or NetworkBridge.
	Network string

	Services []Service

	// Workspace is the job's workspace on the host, mounted at
	// WorkspaceDir.
	Workspace string
	// Scratch is a directory on the host for the job's step scripts,
	// mounted at /arcade; it must exist.
	Scratch string
}

// Service is a container started beside the job's, on its network.
type Service struct {
	// Name is its host name on the job's network.
	Name    string
	Image   string
	Env     map[string]string
	Command []string
	// Port, when set, makes the service ready once it accepts TCP
	// connections on this port.
	Port int
	// HealthCommand, when set, makes the service ready once this shell
	// command, run in the service's container, exits 0.
	HealthCommand string
	// ReadyTimeout bounds the wait; DefaultReadyTimeout when zero.
	ReadyTimeout time.Duration
}

// Job is a job's container with its services and network; it implements
// executor.Executor.
type Job struct {
	e      *Engine
	spec   Spec
	labels map[string]string
	// scratch is the job's scratch directory, which the container can
	// write: the agent reaches it only through the confined Dir, so that
	// no link a step made there leads the agent's writes out.
	scratch *confine.Dir
	id      string   // the job's container
	network string   // the job's own network, "" without
	extra   []string // service containers
	user    string   // the image's user
	env     []string // the image's environment
	steps   int

	mu     sync.Mutex
	closed bool
	// stopped: a step outlived its grace and the container was killed.
	stopped bool
}

var _ executor.Executor = (*Job)(nil)

// Start pulls what it needs, creates the job's network, starts its
// services and waits until they are ready, then starts the job's
// container. Progress goes to emit as System lines. On failure nothing is
// left in the engine and the error carries its reason (see ReasonOf).
func (e *Engine) Start(ctx context.Context, spec Spec, emit func(executor.Line)) (j *Job, err error) {
	if emit == nil {
		emit = func(executor.Line) {}
	}
	for _, dir := range []*string{&spec.Workspace, &spec.Scratch} {
		abs, err := filepath.Abs(*dir)
		if err != nil {
			return nil, fail(executor.ReasonContainerSetup, "workspace: %v", err)
		}
		*dir = abs // bind mounts take absolute paths
	}
	scratch, err := confine.Open(spec.Scratch)
	if err != nil {
		return nil, fail(executor.ReasonContainerSetup, "scratch directory: %v", err)
	}
	j = &Job{e: e, spec: spec, scratch: scratch, labels: map[string]string{
		LabelAgent: spec.AgentID, LabelAgentKey: spec.AgentKey, LabelJob: spec.JobID, LabelAttempt: strconv.Itoa(int(spec.Attempt)),
	}}
	defer func() {
		if err != nil {
			_ = j.Close(context.WithoutCancel(ctx))
			j = nil
		}
	}()
	auth, err := registryAuth(spec.RegistryAuth, spec.Image)
	if err != nil {
		return j, &Error{Reason: executor.ReasonImagePull, Err: err}
	}
	img, err := e.ensureImage(ctx, spec.Image, spec.Pull, auth, emit)
	if err != nil {
		return j, err
	}
	if img.Config != nil {
		j.user, j.env = img.Config.User, img.Config.Env
	}

	netMode := container.NetworkMode(spec.Network)
	if spec.Network == "" {
		name := fmt.Sprintf("arcade-%s-%d", shortID(spec.JobID), spec.Attempt)
		res, err := e.c.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Labels: j.labels})
		if err != nil {
			return j, e.engineError(executor.ReasonContainerSetup, "create the job's network", err)
		}
		j.network = res.ID
		netMode = container.NetworkMode(name)
	}
	for _, svc := range spec.Services {
		// A user:password credential is the job image's registry's: it
		// goes to no other; a docker config names its registries.
		svcAuth := ""
		if registrycred.IsDockerConfig(spec.RegistryAuth) || registrycred.Host(svc.Image) == registrycred.Host(spec.Image) {
			svcAuth, _ = registryAuth(spec.RegistryAuth, svc.Image)
		}
		if err := j.startService(ctx, svc, svcAuth, emit); err != nil {
			return j, err
		}
	}

	cfg := &container.Config{
		Image: spec.Image, Labels: withRole(j.labels, "job"), WorkingDir: WorkspaceDir,
		// An image's entrypoint would get the keep-alive as arguments.
		Entrypoint: []string{"/bin/sh", "-c", "while :; do sleep 86400; done"},
		Cmd:        []string{},
	}
	init := true
	host := &container.HostConfig{
		NetworkMode: netMode, Init: &init,
		Mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: spec.Workspace, Target: WorkspaceDir},
			{Type: mount.TypeBind, Source: spec.Scratch, Target: scratchDir},
		},
		Resources: container.Resources{NanoCPUs: int64(spec.CPUs * 1e9), Memory: spec.MemoryBytes},
	}
	if spec.MemoryBytes > 0 {
		host.Resources.MemorySwap = spec.MemoryBytes // no swap beyond the limit
	}
	name := fmt.Sprintf("arcade-%s-%d", shortID(spec.JobID), spec.Attempt)
	created, err := e.c.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: host})
	if err != nil {
		return j, e.engineError(executor.ReasonContainerSetup, "create the job's container", err)
	}
	j.id = created.ID
	if _, err := e.c.ContainerStatPath(ctx, j.id, client.ContainerStatPathOptions{Path: "/bin/sh"}); err != nil {
		if ferr := e.engineError(executor.ReasonContainerSetup, "", err); ferr.Reason == executor.ReasonEngineLost {
			return j, ferr
		}
		return j, fail(executor.ReasonContainerSetup, "image %s has no /bin/sh: container jobs run their steps with /bin/sh", spec.Image)
	}
	if _, err := e.c.ContainerStart(ctx, j.id, client.ContainerStartOptions{}); err != nil {
		return j, e.engineError(executor.ReasonContainerSetup, "start the job's container", err)
	}
	if u := j.user; u != "" && u != "root" && u != "0" && !strings.HasPrefix(u, "0:") && !strings.HasPrefix(u, "root:") {
		// A non-root image user owns the workspace while the job runs.
		if code, out, err := j.exec(ctx, "0", []string{"chown", "-R", u, WorkspaceDir, scratchDir}); err != nil {
			return j, err
		} else if code != 0 {
			return j, fail(executor.ReasonContainerSetup, "give the workspace to user %s: %s", u, strings.TrimSpace(out))
		}
	}
	emit(system("container %s started from %s", name, spec.Image))
	return j, nil
}

func withRole(l map[string]string, role string) map[string]string {
	out := make(map[string]string, len(l)+1)
	for k, v := range l {
		out[k] = v
	}
	out[LabelRole] = role
	return out
}

func system(format string, args ...any) executor.Line {
	return executor.Line{Stream: executor.System, Text: fmt.Sprintf(format, args...), Time: time.Now()}
}

func shortID(id string) string {
	id = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, id)
	if len(id) > 36 {
		id = id[:36]
	}
	return id
}

// Workspace returns where steps see the job's workspace.
func (j *Job) Workspace() string { return WorkspaceDir }

// Close removes the job's container, its services and its network. It may
// be called more than once.
func (j *Job) Close(ctx context.Context) error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	j.mu.Unlock()
	defer j.scratch.Close()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var errs []error
	if j.id != "" && os.Geteuid() != 0 {
		// The agent must be able to remove what the job wrote.
		_, _, _ = j.exec(ctx, "0", []string{"chown", "-R", fmt.Sprintf("%d:%d", os.Geteuid(), os.Getegid()), WorkspaceDir})
	}
	ids := append(slices.Clone(j.extra), j.id)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, id := range ids {
		if id == "" {
			continue
		}
		wg.Go(func() {
			if _, err := j.e.c.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !isNotFound(err) {
				mu.Lock()
				errs = append(errs, fmt.Errorf("remove container %s: %w", id[:min(12, len(id))], err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if j.network != "" {
		if _, err := j.e.c.NetworkRemove(ctx, j.network, client.NetworkRemoveOptions{}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network: %w", err))
		}
	}
	if len(errs) == 0 {
		j.e.log.Info("job containers removed", "job", j.spec.JobID, "attempt", j.spec.Attempt)
	}
	return errors.Join(errs...)
}

func isNotFound(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "no such")
}

// ensureImage makes the image available as the policy says, logging pull
// progress.
func (e *Engine) ensureImage(ctx context.Context, ref, policy, auth string, emit func(executor.Line)) (client.ImageInspectResult, error) {
	if policy == "" {
		policy = PullIfNotPresent
	}
	if policy != PullAlways {
		img, err := e.c.ImageInspect(ctx, ref)
		if err == nil {
			return img, nil
		}
		if !isNotFound(err) && !strings.Contains(err.Error(), "not found") {
			return img, e.engineError(executor.ReasonImagePull, "inspect image "+ref, err)
		}
		if policy == PullNever {
			return img, fail(executor.ReasonImagePull, "image %s is not on the engine and the pull policy is never", ref)
		}
	}
	if err := e.pull(ctx, ref, auth, emit); err != nil {
		return client.ImageInspectResult{}, err
	}
	img, err := e.c.ImageInspect(ctx, ref)
	if err != nil {
		return img, e.engineError(executor.ReasonImagePull, "inspect image "+ref, err)
	}
	return img, nil
}

// pull pulls ref, writing one System line per layer state change (not per
// progress tick).
func (e *Engine) pull(ctx context.Context, ref, auth string, emit func(executor.Line)) error {
	emit(system("pulling image %s", ref))
	resp, err := e.c.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: auth})
	if err != nil {
		if client.IsErrConnectionFailed(err) {
			return e.engineError(executor.ReasonImagePull, "pull "+ref, err)
		}
		return fail(executor.ReasonImagePull, "pull %s: %s", ref, cleanEngineMessage(err.Error()))
	}
	defer resp.Close()
	last := map[string]string{}
	for m, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return e.engineError(executor.ReasonImagePull, "pull "+ref, err)
		}
		if m.Error != nil {
			return fail(executor.ReasonImagePull, "pull %s: %s", ref, cleanEngineMessage(m.Error.Message))
		}
		if m.Status == "" || last[m.ID] == m.Status {
			continue
		}
		last[m.ID] = m.Status
		if m.ID != "" {
			emit(system("%s: %s", m.ID, m.Status))
		} else {
			emit(system("%s", m.Status))
		}
	}
	return nil
}

func cleanEngineMessage(s string) string {
	return strings.TrimPrefix(strings.TrimSpace(s), "Error response from daemon: ")
}

// registryAuth turns a credential into the engine's X-Registry-Auth value
// for the registry of ref; "" without a credential.
func registryAuth(cred, ref string) (string, error) {
	if strings.TrimSpace(cred) == "" {
		return "", nil
	}
	host := registrycred.Host(ref)
	c, err := registrycred.Parse(cred, host)
	if err != nil {
		return "", fmt.Errorf("registry credential: %w", err)
	}
	return authconfig.Encode(registry.AuthConfig{Username: c.Username, Password: c.Password, ServerAddress: host})
}

// startService pulls and starts one service and waits until it is ready;
// when it is not, its log goes to emit.
func (j *Job) startService(ctx context.Context, svc Service, auth string, emit func(executor.Line)) error {
	e := j.e
	if _, err := e.ensureImage(ctx, svc.Image, j.spec.Pull, auth, emit); err != nil {
		return err
	}
	var env []string
	for k, v := range svc.Env {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	cfg := &container.Config{Image: svc.Image, Env: env, Labels: withRole(j.labels, "service")}
	if len(svc.Command) > 0 {
		cfg.Cmd = svc.Command
	}
	netName := fmt.Sprintf("arcade-%s-%d", shortID(j.spec.JobID), j.spec.Attempt)
	init := true
	host := &container.HostConfig{NetworkMode: container.NetworkMode(netName), Init: &init}
	nc := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		netName: {Aliases: []string{svc.Name}},
	}}
	name := fmt.Sprintf("arcade-%s-%d-%s", shortID(j.spec.JobID), j.spec.Attempt, svc.Name)
	created, err := e.c.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: cfg, HostConfig: host, NetworkingConfig: nc})
	if err != nil {
		return e.engineError(executor.ReasonContainerSetup, "create service "+svc.Name, err)
	}
	j.extra = append(j.extra, created.ID)
	if _, err := e.c.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return e.engineError(executor.ReasonServiceNotReady, "start service "+svc.Name, err)
	}
	emit(system("service %s started from %s", svc.Name, svc.Image))
	if err := j.waitReady(ctx, created.ID, netName, svc); err != nil {
		j.serviceLog(created.ID, svc.Name, emit)
		return err
	}
	emit(system("service %s is ready", svc.Name))
	return nil
}

// waitReady waits for a service's port or health command.
func (j *Job) waitReady(ctx context.Context, id, netName string, svc Service) error {
	if svc.Port == 0 && svc.HealthCommand == "" {
		return nil
	}
	timeout := svc.ReadyTimeout
	if timeout <= 0 {
		timeout = DefaultReadyTimeout
	}
	deadline := time.Now().Add(timeout)
	var last string
	for {
		insp, err := j.e.c.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			return j.e.engineError(executor.ReasonServiceNotReady, "inspect service "+svc.Name, err)
		}
		st := insp.Container.State
		if st != nil && !st.Running {
			return fail(executor.ReasonServiceNotReady, "service %s exited with status %d before it was ready", svc.Name, st.ExitCode)
		}
		ready := true
		if svc.Port != 0 {
			ready = false
			if ns := insp.Container.NetworkSettings; ns != nil && ns.Networks[netName] != nil && ns.Networks[netName].IPAddress.IsValid() {
				addr := net.JoinHostPort(ns.Networks[netName].IPAddress.String(), strconv.Itoa(svc.Port))
				c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
				if err == nil {
					c.Close()
					ready = true
				} else {
					last = err.Error()
				}
			}
		}
		if ready && svc.HealthCommand != "" {
			code, out, err := j.execIn(ctx, id, "", []string{"/bin/sh", "-c", svc.HealthCommand})
			if err != nil {
				return err
			}
			ready = code == 0
			if !ready {
				last = fmt.Sprintf("health command exited with status %d: %s", code, strings.TrimSpace(out))
			}
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("service %s not ready after %s", svc.Name, timeout)
			if last != "" {
				msg += " (" + last + ")"
			}
			return fail(executor.ReasonServiceNotReady, "%s", msg)
		}
		select {
		case <-ctx.Done():
			return fail(executor.ReasonServiceNotReady, "service %s: %v", svc.Name, context.Cause(ctx))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ServiceLogs writes the end of each service's log to emit (for a job
// that failed).
func (j *Job) ServiceLogs(emit func(executor.Line)) {
	for i, id := range j.extra {
		if i < len(j.spec.Services) {
			j.serviceLog(id, j.spec.Services[i].Name, emit)
		}
	}
}

// serviceLog writes the end of a service's log to emit.
func (j *Job) serviceLog(id, name string, emit func(executor.Line)) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	logs, err := j.e.c.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "100"})
	if err != nil {
		emit(system("service %s: log unavailable: %v", name, err))
		return
	}
	defer logs.Close()
	emit(system("service %s log (last 100 lines):", name))
	out := executor.NewOutput(nil, executor.NewNonce(), func(l executor.Line) {
		l.Text = name + " | " + l.Text
		emit(l)
	})
	_, _ = stdcopy.StdCopy(out.Stdout(), out.Stderr(), io.LimitReader(logs, 1<<20))
	out.Close()
}

// exec runs cmd in the job's container as user and returns its exit code
// and combined output (up to 64 KiB).
func (j *Job) exec(ctx context.Context, user string, cmd []string) (int, string, error) {
	return j.execIn(ctx, j.id, user, cmd)
}

func (j *Job) execIn(ctx context.Context, id, user string, cmd []string) (int, string, error) {
	e := j.e
	ex, err := e.c.ExecCreate(ctx, id, client.ExecCreateOptions{User: user, Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return -1, "", e.engineError(executor.ReasonContainerSetup, "exec in container", err)
	}
	att, err := e.c.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return -1, "", e.engineError(executor.ReasonContainerSetup, "exec in container", err)
	}
	var buf limitedBuffer
	_, _ = stdcopy.StdCopy(&buf, &buf, att.Reader)
	att.Close()
	insp, err := e.c.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
	if err != nil {
		return -1, "", e.engineError(executor.ReasonContainerSetup, "exec in container", err)
	}
	return insp.ExitCode, buf.String(), nil
}

type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 64<<10 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }

// stepFiles are the names of a step's files in the scratch directory, and
// their paths in the container.
func (j *Job) stepFiles(n int) (base, script, pid, rc string) {
	base = fmt.Sprintf("step-%d", n)
	return base, scratchDir + "/" + base + ".sh", scratchDir + "/" + base + ".pid", scratchDir + "/" + base + ".rc"
}
