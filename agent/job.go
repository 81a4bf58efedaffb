package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/go-arcade/arcade/agent/executor"
	"github.com/go-arcade/arcade/agent/executor/container"
	"github.com/go-arcade/arcade/agent/jobtrack"
	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	"github.com/go-arcade/arcade/internal/confine"
	"github.com/go-arcade/arcade/internal/gitcli"
)

// runningJob is a job the agent runs now.
type runningJob struct {
	cancel  context.CancelCauseFunc
	attempt int32
}

// cancelReason is the cause given to a job's context when it is cancelled.
type cancelReason struct{ reason string }

func (c *cancelReason) Error() string { return c.reason }

func (a *Agent) runningIDs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := make([]string, 0, len(a.jobs))
	for id := range a.jobs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// cancelJob stops a running job; unknown jobs are ignored.
func (a *Agent) cancelJob(jobID, reason string) {
	a.mu.Lock()
	rj, ok := a.jobs[jobID]
	a.mu.Unlock()
	if !ok {
		return
	}
	if reason == "" {
		reason = "cancelled"
	}
	a.log.Info("cancelling job", "job", jobID, "reason", reason)
	rj.cancel(&cancelReason{reason})
}

// runJob runs one leased job to its end and reports it.
func (a *Agent) runJob(agentCtx context.Context, agentID string, job *agentv1.Job) {
	log := a.log.With("job", job.GetId(), "attempt", job.GetAttempt())
	ctx, cancel := context.WithCancelCause(agentCtx)
	defer cancel(nil)
	a.mu.Lock()
	a.jobs[job.GetId()] = &runningJob{cancel: cancel, attempt: job.GetAttempt()}
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.jobs, job.GetId())
		a.mu.Unlock()
	}()

	report := &agentv1.ReportJobStatusRequest{AgentId: agentID, JobId: job.GetId(), Attempt: job.GetAttempt()}
	// Sent under the agent's context, not the job's: a cancel that comes
	// while this report is in flight must not cut it, or the job would be
	// left without its final report until its lease ran out on the server.
	// The cancelled job then ends at once, reported CANCELLED.
	if !a.reportStatus(agentCtx, log, report, agentv1.JobStatus_JOB_STATUS_RUNNING) {
		return
	}
	log.Info("job started", "name", job.GetName())

	ws := filepath.Join(a.cfg.WorkDir, "jobs", fmt.Sprintf("%s-%d", job.GetId(), job.GetAttempt()))
	// Recorded before anything of the job exists; ended (processes,
	// cgroup, record) after the workspace is removed.
	track, err := a.tracker.Begin(job.GetId(), job.GetAttempt(), ws)
	if err != nil {
		report.ExitCode = -1
		report.Message = fmt.Sprintf("cannot record the job on the agent: %v", err)
		a.reportStatus(context.WithoutCancel(ctx), log, report, agentv1.JobStatus_JOB_STATUS_FAILED)
		return
	}
	defer func() {
		if err := track.End(); err != nil {
			log.Warn("ending the job's processes", "err", err)
		}
	}()
	ship := newShipper(a, agentID, job.GetId(), job.GetAttempt(), log, jobMasks(job))
	r := &jobRun{job: job, ws: ws, ship: ship, log: log, contain: track}
	if err := a.prepareWorkspace(r, track); err != nil {
		r.failed = true
		r.result = executor.Result{Outcome: executor.Failed, ExitCode: -1, Err: err}
		r.message = err.Error()
		r.reason = agentv1.EndReason_END_REASON_WORKSPACE
	} else {
		// The phases: checkout, inputs, cache restore, steps, outputs,
		// cache save, artifact upload (see phases.go). Artifacts are
		// uploaded before the final report, so a finished job's artifacts
		// are there, and before the log closes, which records each upload.
		a.runPhases(ctx, r)
	}
	ship.close()
	// The final report counts the lines: the server takes no line of the
	// attempt past it afterwards.
	report.LogLines = ship.lines()

	result, message := r.result, r.message
	switch result.Outcome {
	case executor.Succeeded:
		report.ExitCode = 0
		report.Artifacts = r.arts
		report.Outputs, report.SecretOutputs = r.outputs, r.secretOutputs
		a.reportStatus(context.WithoutCancel(ctx), log, report, agentv1.JobStatus_JOB_STATUS_SUCCESS)
	case executor.TimedOut:
		report.ExitCode = int32(result.ExitCode)
		report.Message = fmt.Sprintf("timed out after %s", job.GetTimeout().AsDuration())
		a.reportStatus(context.WithoutCancel(ctx), log, report, agentv1.JobStatus_JOB_STATUS_TIMEOUT)
	case executor.Cancelled:
		report.ExitCode = int32(result.ExitCode)
		status := agentv1.JobStatus_JOB_STATUS_CANCELLED
		var reason *cancelReason
		if cause := context.Cause(ctx); errors.As(cause, &reason) {
			report.Message = reason.reason
		} else {
			// The agent is stopping: the job did not fail on its own, but it
			// did not finish either; the server retries it if it may.
			status = agentv1.JobStatus_JOB_STATUS_FAILED
			report.Message = "agent stopped while the job ran"
		}
		a.reportStatus(context.WithoutCancel(ctx), log, report, status)
	default:
		report.ExitCode = int32(result.ExitCode)
		report.Reason = r.reason
		if r.reason == agentv1.EndReason_END_REASON_ENGINE_LOST {
			// Container jobs (this one's retry among them) must not come
			// back here before the engine does.
			a.engineLost(context.WithoutCancel(ctx))
		}
		report.Message = fmt.Sprintf("exit status %d", result.ExitCode)
		if result.Err != nil && result.ExitCode < 0 {
			report.Message = result.Err.Error()
		}
		if message != "" {
			report.Message = message
		}
		a.reportStatus(context.WithoutCancel(ctx), log, report, agentv1.JobStatus_JOB_STATUS_FAILED)
	}
	if !a.cfg.KeepWorkspaces {
		for _, dir := range []string{ws, scratchDir(ws)} {
			if err := os.RemoveAll(dir); err != nil {
				log.Warn("remove workspace", "dir", dir, "err", err)
			}
		}
	}
}

// scratchDir is the directory beside a job's workspace that holds what the
// agent needs for the job outside the workspace (a container job's step
// scripts).
func scratchDir(ws string) string { return ws + ".arcade" }

// prepareWorkspace makes a fresh, empty workspace and the job's env.
func (a *Agent) prepareWorkspace(r *jobRun, track *jobtrack.Job) error {
	job, ws := r.job, r.ws
	dirs := []string{ws}
	if job.GetImage() != "" || len(job.GetOutputs()) > 0 {
		dirs = append(dirs, scratchDir(ws))
	}
	for _, dir := range dirs {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("clean workspace: %w", err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create workspace: %w", err)
		}
	}
	env := map[string]string{
		"ARCADE_JOB_ID":      job.GetId(),
		"ARCADE_JOB_NAME":    job.GetName(),
		"ARCADE_JOB_ATTEMPT": fmt.Sprint(job.GetAttempt()),
		"ARCADE_WORKSPACE":   ws,
	}
	if job.GetImage() != "" {
		env["ARCADE_WORKSPACE"] = container.WorkspaceDir
	}
	if len(job.GetOutputs()) > 0 {
		// Outside the workspace, so that no artifact or cache takes it.
		env["ARCADE_OUTPUT"] = scratchDir(ws) + "/" + outputFile
		if job.GetImage() != "" {
			env["ARCADE_OUTPUT"] = container.ScratchDir + "/" + outputFile
		}
	}
	for k, v := range job.GetEnv() {
		env[k] = v
	}
	auth := job.GetContainer().GetRegistryAuthSecret()
	for k, v := range job.GetSecrets() {
		if k != auth || job.GetImage() == "" {
			env[k] = v
		}
	}
	maps.Copy(env, track.Env())
	r.env = env
	return nil
}

// reportStatus sends a status report, again and again while the server
// cannot take it (it is unreachable, or its database fails): the server
// keeps the job leased long enough to hear the truth (its grace), and the
// agent keeps trying for its patience. It returns false when the server
// refused the report (the job is no longer this agent's) or the agent gave
// up.
func (a *Agent) reportStatus(ctx context.Context, log interface {
	Warn(string, ...any)
	Info(string, ...any)
}, req *agentv1.ReportJobStatusRequest, status agentv1.JobStatus) bool {
	req.Status = status
	req.Timestamp = timestamppb.Now()
	req.Message = statusMessage(req.GetMessage())
	r := a.retrier()
	for {
		cancelRequested, err := a.sendStatus(ctx, req)
		if err == nil {
			if cancelRequested {
				a.cancelJob(req.GetJobId(), "cancelled by request")
			}
			return true
		}
		if refusal(err) && grpcstatus.Code(err) != codes.Unauthenticated {
			log.Warn("server refused the job report; dropping the job", "status", status, "err", err)
			return false
		}
		if !r.again(ctx) {
			log.Warn("could not report job status", "status", status, "err", err)
			return false
		}
	}
}

// maxArtifacts bounds the files one job may keep.
const maxArtifacts = 10000

// collectArtifacts finds the files matching the job's artifact globs and
// describes them (path, size, sha256). Everything is read through ws, the
// confined workspace: nothing outside it is ever collected. A match, or a
// directory on the way, that is a link leading outside is skipped, and so
// is a linked directory that loops; note says which path and why, in the
// job's log. Links that stay inside are followed: a file reached through a
// link is collected under the link's path, with the content of its target.
func (a *Agent) collectArtifacts(log interface{ Warn(string, ...any) }, ws *confine.Dir, cfg *agentv1.ArtifactConfig, note func(string)) []*agentv1.Artifact {
	if cfg == nil || len(cfg.GetPaths()) == 0 {
		return nil
	}
	now := time.Now()
	var expires *timestamppb.Timestamp
	if d := cfg.GetExpireIn().AsDuration(); d > 0 {
		expires = timestamppb.New(now.Add(d))
	}
	skip := func(name string, err error) {
		why := skipReason(err)
		log.Warn("artifact path skipped", "path", name, "reason", why)
		note(fmt.Sprintf("artifact path %s skipped: %s", name, why))
	}
	seen := map[string]bool{}
	var out []*agentv1.Artifact
	full := false
	for _, pattern := range cfg.GetPaths() {
		matches, err := ws.Glob(pattern, skip)
		if err != nil {
			log.Warn("bad artifact pattern", "pattern", pattern, "err", err)
			note(fmt.Sprintf("artifact pattern %s skipped: %v", pattern, err))
			continue
		}
		for _, m := range matches {
			_ = ws.Walk(m, func(name string, info fs.FileInfo, err error) error {
				if err != nil {
					skip(name, err)
					return nil
				}
				if info.IsDir() || !info.Mode().IsRegular() || seen[name] {
					return nil
				}
				if len(out) >= maxArtifacts {
					full = true
					return fs.SkipAll
				}
				seen[name] = true
				size, sum, err := hashFile(ws, name)
				if err != nil {
					skip(name, err)
					return nil
				}
				out = append(out, &agentv1.Artifact{Path: name, SizeBytes: size, Sha256: sum,
					CreatedAt: timestamppb.New(now), ExpiresAt: expires})
				return nil
			})
		}
	}
	if full {
		note(fmt.Sprintf("artifacts: only the first %d files are kept", maxArtifacts))
	}
	return out
}

// skipReason says why an artifact path was not collected.
func skipReason(err error) string {
	switch {
	case errors.Is(err, confine.ErrOutside):
		return "it leads outside the workspace (a symbolic link, or \"..\")"
	case errors.Is(err, confine.ErrLoop):
		return "a symbolic link loops back into a directory above it"
	case errors.Is(err, confine.ErrSpecial):
		return "not a regular file"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func hashFile(ws *confine.Dir, name string) (int64, string, error) {
	f, err := ws.Open(name)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// maxStatusMessage bounds the message of a status report; the server
// refuses longer ones (a plugin's error may be any length).
const maxStatusMessage = 16 << 10

// statusMessage makes a message fit a status report: valid UTF-8 without
// NUL bytes (which neither protobuf nor PostgreSQL carry), cut to
// maxStatusMessage bytes on a character boundary.
func statusMessage(msg string) string {
	msg = strings.ReplaceAll(strings.ToValidUTF8(msg, "\uFFFD"), "\x00", "\uFFFD")
	if len(msg) <= maxStatusMessage {
		return msg
	}
	cut := maxStatusMessage - len("…")
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
}

// jobMasks are the values masked in a job's log: its secrets and the plugin
// config values that come from stored secrets.
func jobMasks(job *agentv1.Job) []string {
	masks := slices.Collect(maps.Values(job.GetSecrets()))
	if c := job.GetCheckout().GetCredential(); c != "" {
		masks = append(masks, c)
		masks = append(masks, gitcli.ParseAuth(c).Secrets()...)
	}
	for _, m := range job.GetPlugins() {
		masks = append(masks, slices.Collect(maps.Values(m.GetSecretConfig()))...)
	}
	return masks
}
