// Package container runs a job's command steps in a container of the
// job's image, through the Docker Engine API (Docker Engine, or Podman's
// Docker-compatible socket).
//
// One container per job, kept for the job's life, with an init as PID 1
// (the engine's, docker-init) and "sleep" as its one child; every step runs
// in it through an exec as one "sh -e" script, exactly as the shell
// executor runs it on the host (package executor: the same script, the
// same "$ command" lines, the same line splitting). The job's workspace is
// bind-mounted at /workspace and is each step's working directory; a
// scratch directory of the job (its step scripts) is mounted at /arcade.
// Service containers start beside it on the job's own network, reachable
// by name.
//
// Everything the package creates in the engine carries the labels
// arcade.dev/agent, arcade.dev/job and arcade.dev/attempt, so that an
// agent can remove what an earlier life of it left (RemoveLeftovers).
package container

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/go-arcade/arcade/agent/executor"
)

// Label keys on every container, network and volume the package creates.
const (
	LabelAgent = "arcade.dev/agent"
	// LabelAgentKey identifies the agent's data folder (its job tracker's
	// key), known before the agent registers.
	LabelAgentKey = "arcade.dev/agent-key"
	LabelJob      = "arcade.dev/job"
	LabelAttempt  = "arcade.dev/attempt"
	// LabelRole is "job" or "service".
	LabelRole = "arcade.dev/role"
)

// WorkspaceDir is where a job's workspace is mounted in its container.
const WorkspaceDir = "/workspace"

// scratchDir is where the job's scratch directory (step scripts, the
// running step's process group id) is mounted.
const scratchDir = "/arcade"

// Engine is a Docker Engine API endpoint.
type Engine struct {
	c   *client.Client
	log *slog.Logger
}

// Connect returns the engine at host (DOCKER_HOST form, unix:// or tcp://;
// "" means the client's default, DOCKER_HOST or the default socket). It
// does not talk to the engine yet: see Version.
func Connect(host string, log *slog.Logger) (*Engine, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH as the docker
	// command reads them; host, when given, wins over DOCKER_HOST.
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	c, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker engine %q: %w", host, err)
	}
	return &Engine{c: c, log: log}, nil
}

// Close releases the client's connections.
func (e *Engine) Close() error { return e.c.Close() }

// Version asks the engine for its version ("20.10.24+dfsg1"), through the
// API; an error means the engine does not answer (or answers wrongly).
func (e *Engine) Version(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := e.c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return "", err
	}
	v, err := e.c.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return "", err
	}
	return v.Version, nil
}

// alive reports whether the engine answers a ping within a second.
func (e *Engine) alive() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := e.c.Ping(ctx, client.PingOptions{})
	return err == nil
}

// Error is a failure of the container set-up or of the engine, with its
// typed reason.
type Error struct {
	Reason executor.Reason
	Err    error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func fail(reason executor.Reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// ReasonOf returns the typed reason of err (ReasonNone when it has none).
func ReasonOf(err error) executor.Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return executor.ReasonNone
}

// engineError classifies an error of an API call: a lost engine, or the
// given reason.
func (e *Engine) engineError(reason executor.Reason, what string, err error) *Error {
	if client.IsErrConnectionFailed(err) || (!errors.Is(err, context.Canceled) && !e.alive()) {
		return &Error{Reason: executor.ReasonEngineLost, Err: fmt.Errorf("container engine lost (%s): %w", what, err)}
	}
	return &Error{Reason: reason, Err: fmt.Errorf("%s: %w", what, err)}
}

// RemoveLeftovers removes the containers, networks and volumes labelled
// label=value (LabelAgent or LabelAgentKey): what an earlier life of the
// agent left after a crash, or what a job could not remove while the engine
// was away. Objects of the attempts keep names (the attempts the agent runs
// now) stay. It returns how many objects it removed.
func (e *Engine) RemoveLeftovers(ctx context.Context, label, value string, keep func(jobID, attempt string) bool) (int, error) {
	if keep == nil {
		keep = func(string, string) bool { return false }
	}
	if value == "" {
		return 0, fmt.Errorf("remove leftovers: no value for %s", label)
	}
	f := make(client.Filters).Add("label", label+"="+value)
	n := 0
	var errs []error
	cs, err := e.c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return 0, fmt.Errorf("list containers: %w", err)
	}
	for _, c := range cs.Items {
		if keep(c.Labels[LabelJob], c.Labels[LabelAttempt]) {
			continue
		}
		if _, err := e.c.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			errs = append(errs, fmt.Errorf("remove container %s: %w", strings.Join(c.Names, ","), err))
			continue
		}
		n++
	}
	ns, err := e.c.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return n, fmt.Errorf("list networks: %w", err)
	}
	for _, nw := range ns.Items {
		if keep(nw.Labels[LabelJob], nw.Labels[LabelAttempt]) {
			continue
		}
		if _, err := e.c.NetworkRemove(ctx, nw.ID, client.NetworkRemoveOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("remove network %s: %w", nw.Name, err))
			continue
		}
		n++
	}
	vs, err := e.c.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return n, fmt.Errorf("list volumes: %w", err)
	}
	for _, v := range vs.Items {
		if keep(v.Labels[LabelJob], v.Labels[LabelAttempt]) {
			continue
		}
		if _, err := e.c.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err != nil {
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// ScratchDir is where a job's scratch directory is in its container
// ($ARCADE_OUTPUT lives there).
const ScratchDir = scratchDir
