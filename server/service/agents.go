package service

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/core/jobstep"
	"github.com/go-arcade/arcade/core/labels"
	"github.com/go-arcade/arcade/core/logpack"
	"github.com/go-arcade/arcade/server/auth"
	"github.com/go-arcade/arcade/server/dispatch"
	"github.com/go-arcade/arcade/server/lifecycle"
	"github.com/go-arcade/arcade/server/peers"
	"github.com/go-arcade/arcade/server/store"
)

// AgentServer implements agentv1.AgentServiceServer.
type AgentServer struct {
	agentv1.UnimplementedAgentServiceServer
	s *Service
}

// callerAgent checks that an agent call speaks for the agent whose token it
// carries and returns the agent id.
func callerAgent(ctx context.Context, agentID string) (string, error) {
	if err := requireID("agent_id", agentID); err != nil {
		return "", err
	}
	id := auth.FromContext(ctx)
	if id.Kind == auth.AgentCaller && id.AgentID != agentID {
		return "", grpcstatus.Errorf(codes.PermissionDenied, "agent_id: this token belongs to agent %s, not %s", id.AgentID, agentID)
	}
	return agentID, nil
}

// Register implements AgentService.Register.
func (a *AgentServer) Register(ctx context.Context, req *agentv1.RegisterRequest) (*agentv1.RegisterResponse, error) {
	s := a.s
	name := strings.TrimSpace(req.GetName())
	if name == "" {
		name = strings.TrimSpace(req.GetHostname())
	}
	if name == "" {
		return nil, invalid("name", "must not be empty (nor hostname)")
	}
	if req.GetMaxConcurrentJobs() < 0 {
		return nil, invalid("max_concurrent_jobs", "must not be negative, got %d", req.GetMaxConcurrentJobs())
	}
	if err := labels.ValidateLabels(req.GetLabels()); err != nil {
		return nil, selectorError("labels", err)
	}
	if n := len(req.GetLabels()); n > labels.MaxRecommendedLabels {
		s.log.Warn("agent has more labels than recommended", "agent", name, "labels", n, "recommended", labels.MaxRecommendedLabels)
	}
	plugins, err := agentPlugins(req.GetPlugins())
	if err != nil {
		return nil, err
	}
	token := auth.NewToken()
	now := s.now()
	rec := &store.Agent{
		ID:              newID(),
		Name:            name,
		Hostname:        req.GetHostname(),
		OS:              req.GetOs(),
		Arch:            req.GetArch(),
		Version:         req.GetVersion(),
		Labels:          nonNil(req.GetLabels()),
		Plugins:         plugins,
		MaxJobs:         max(req.GetMaxConcurrentJobs(), 1),
		TokenHash:       auth.Hash(token),
		Online:          true,
		RegisteredAt:    now,
		LastHeartbeatAt: now,
	}
	// taken: the name's record was taken over without proof; the jobs
	// leased to it are not this caller's.
	var proven, taken bool
	admit := func(old *store.Agent) error {
		if old == nil {
			return nil
		}
		if old.Revoked {
			return grpcstatus.Errorf(codes.PermissionDenied, "agent %q was revoked; it cannot register again", name)
		}
		proven = req.GetAgentId() == old.ID && req.GetAgentToken() != "" && old.TokenHash != "" &&
			subtle.ConstantTimeCompare([]byte(auth.Hash(req.GetAgentToken())), []byte(old.TokenHash)) == 1
		switch {
		case proven:
			token, rec.TokenHash = req.GetAgentToken(), old.TokenHash // it keeps its token
		case old.Online:
			return grpcstatus.Errorf(codes.AlreadyExists, "name: agent %q is online (last heard at %s); only that agent may register under its name, "+
				"with the agent_id and agent_token it was given, or another once it went offline (a lease without heartbeats, %s)",
				name, old.LastHeartbeatAt.Format(time.RFC3339), s.cfg.LeaseTTL)
		default:
			// Trust an admin gave that agent is not the newcomer's.
			taken, rec.TrustMarked, rec.AdminLabels = true, false, nil
		}
		return nil
	}
	agent, err := s.store.RegisterAgentIf(ctx, rec, admit)
	if err != nil {
		return nil, storeError(err, "agent")
	}
	if taken {
		// A new process under the name, not the agent that ran the jobs
		// leased before: they are lost with that agent.
		running, err := s.store.RunningJobs(ctx, agent.ID)
		if err != nil {
			s.log.Warn("jobs of the agent taken over not requeued", "agent", name, "err", err)
		}
		for _, j := range running {
			if j.StartedAt.Before(now) {
				s.life.LoseJob(ctx, j, jobstate.ReasonAgentLost, "agent registered again without its identity")
			}
		}
	}
	s.auth.Forget(agent.ID)
	s.publishAgent(agent, jobv1.EventType_EVENT_TYPE_AGENT_ONLINE, "registered")
	s.log.Info("agent registered", "agent", agent.Name, "id", agent.ID, "labels", agent.Labels, "max_jobs", agent.MaxJobs, "plugins", agent.Plugins,
		"proven", proven, "taken_over", taken)
	s.dispatch.Wake()
	return &agentv1.RegisterResponse{
		AgentId:           agent.ID,
		AgentToken:        token,
		HeartbeatInterval: durationpb.New(s.cfg.HeartbeatInterval),
		MaxPollWait:       durationpb.New(s.cfg.MaxPollWait),
		Agent:             s.agentProto(ctx, agent, -1),
	}, nil
}

// Unregister implements AgentService.Unregister: the agent is removed and its
// jobs go back to the queue (or fail when out of retries).
func (a *AgentServer) Unregister(ctx context.Context, req *agentv1.UnregisterRequest) (*agentv1.UnregisterResponse, error) {
	s := a.s
	id, err := callerAgent(ctx, req.GetAgentId())
	if err != nil {
		return nil, err
	}
	if _, err := s.life.LoseAgentJobs(ctx, id, jobstate.ReasonAgentLost, "agent unregistered"); err != nil {
		return nil, storeError(err, "agent jobs")
	}
	if err := s.store.DeleteAgent(ctx, id); err != nil {
		return nil, storeError(err, "agent "+id)
	}
	s.auth.Forget(id)
	s.publishAgent(&store.Agent{ID: id}, jobv1.EventType_EVENT_TYPE_AGENT_OFFLINE, "unregistered")
	s.log.Info("agent unregistered", "id", id)
	return &agentv1.UnregisterResponse{}, nil
}

// Heartbeat implements AgentService.Heartbeat.
func (a *AgentServer) Heartbeat(ctx context.Context, req *agentv1.HeartbeatRequest) (*agentv1.HeartbeatResponse, error) {
	s := a.s
	id, err := callerAgent(ctx, req.GetAgentId())
	if err != nil {
		return nil, err
	}
	if err := labels.ValidateLabels(req.GetLabels()); err != nil {
		return nil, selectorError("labels", err)
	}
	now := s.now()
	var cameOnline bool
	agent, err := s.store.ModifyAgent(ctx, id, func(ag *store.Agent) error {
		cameOnline = !ag.Online
		ag.Online = true
		ag.LastHeartbeatAt = now
		if m := req.GetMetrics(); m != nil {
			ag.Metrics, _ = protojson.Marshal(m)
		}
		maps.Copy(ag.Labels, req.GetLabels())
		return nil
	}, "online", "last_heartbeat_at", "metrics", "labels")
	if err != nil {
		return nil, storeError(err, "agent "+id)
	}
	if cameOnline {
		s.log.Info("agent back online", "agent", agent.Name, "id", id)
		s.publishAgent(agent, jobv1.EventType_EVENT_TYPE_AGENT_ONLINE, "back online")
	}
	if len(req.GetLabels()) > 0 {
		s.publishAgent(agent, jobv1.EventType_EVENT_TYPE_AGENT_LABELS_CHANGED, "labels from heartbeat")
	}
	if cameOnline || len(req.GetLabels()) > 0 {
		s.dispatch.Wake()
	}
	if err := s.life.ExtendLeases(ctx, id, req.GetRunningJobIds(), now); err != nil {
		return nil, storeError(err, "leases")
	}
	stop, err := s.life.JobsToStop(ctx, id, req.GetRunningJobIds())
	if err != nil {
		return nil, storeError(err, "jobs of agent "+id)
	}
	return &agentv1.HeartbeatResponse{
		HeartbeatInterval: durationpb.New(s.cfg.HeartbeatInterval),
		CancelJobIds:      stop,
		Labels:            agent.Labels,
		Status:            s.agentProto(ctx, agent, -1).GetStatus(),
	}, nil
}

// UpdateLabels implements AgentService.UpdateLabels.
func (a *AgentServer) UpdateLabels(ctx context.Context, req *agentv1.UpdateLabelsRequest) (*agentv1.UpdateLabelsResponse, error) {
	s := a.s
	id, err := callerAgent(ctx, req.GetAgentId())
	if err != nil {
		return nil, err
	}
	if err := labels.ValidateLabels(req.GetLabels()); err != nil {
		return nil, selectorError("labels", err)
	}
	for i, k := range req.GetRemoveKeys() {
		if err := labels.ValidateKey(k); err != nil {
			return nil, selectorError(fmt.Sprintf("remove_keys[%d]", i), err)
		}
	}
	replace := req.GetMode() == agentv1.LabelUpdateMode_LABEL_UPDATE_MODE_REPLACE
	if replace && len(req.GetRemoveKeys()) > 0 {
		return nil, invalid("remove_keys", "only allowed in merge mode")
	}
	// An admin's labels are kept apart (only they can make an agent
	// trusted, and they outlive its restarts); an agent changing its own
	// labels cannot change or remove them.
	byAdmin := auth.FromContext(ctx).Kind != auth.AgentCaller
	agent, err := s.store.ModifyAgent(ctx, id, func(ag *store.Agent) error {
		if replace {
			ag.Labels = maps.Clone(nonNil(req.GetLabels()))
			if byAdmin {
				ag.AdminLabels = maps.Clone(nonNil(req.GetLabels()))
			}
			return nil
		}
		maps.Copy(ag.Labels, req.GetLabels())
		for _, k := range req.GetRemoveKeys() {
			delete(ag.Labels, k)
		}
		if byAdmin {
			if ag.AdminLabels == nil {
				ag.AdminLabels = map[string]string{}
			}
			maps.Copy(ag.AdminLabels, req.GetLabels())
			for _, k := range req.GetRemoveKeys() {
				delete(ag.AdminLabels, k)
			}
		}
		return nil
	}, "labels", "admin_labels")
	if err != nil {
		return nil, storeError(err, "agent "+id)
	}
	if n := len(agent.Labels); n > labels.MaxRecommendedLabels {
		s.log.Warn("agent has more labels than recommended", "agent", agent.Name, "labels", n, "recommended", labels.MaxRecommendedLabels)
	}
	s.log.Info("agent labels updated", "agent", agent.Name, "labels", agent.Labels, "replace", replace)
	s.publishAgent(agent, jobv1.EventType_EVENT_TYPE_AGENT_LABELS_CHANGED, "labels updated")
	s.dispatch.Wake()
	return &agentv1.UpdateLabelsResponse{Agent: s.agentProto(ctx, agent, -1)}, nil
}

// FetchJob implements AgentService.FetchJob: a long poll for a job.
func (a *AgentServer) FetchJob(ctx context.Context, req *agentv1.FetchJobRequest) (*agentv1.FetchJobResponse, error) {
	s := a.s
	id, err := callerAgent(ctx, req.GetAgentId())
	if err != nil {
		return nil, err
	}
	wait, err := s.pollWait(req.GetWait())
	if err != nil {
		return nil, err
	}
	j, err := s.dispatch.Next(ctx, id, wait)
	if err != nil {
		return nil, storeError(err, "agent "+id)
	}
	if j == nil {
		return &agentv1.FetchJobResponse{}, nil
	}
	job := s.handOut(ctx, j)
	if job == nil {
		return &agentv1.FetchJobResponse{}, nil
	}
	s.log.Info("job leased", "job", j.ID, "name", j.Name, "attempt", j.Attempt, "agent", j.AgentName)
	s.cfg.Metrics.JobLeased(j)
	return &agentv1.FetchJobResponse{Job: job, LeaseExpiresAt: timestamppb.New(j.LeaseExpiresAt)}, nil
}

// ReportJobStatus implements AgentService.ReportJobStatus.
func (a *AgentServer) ReportJobStatus(ctx context.Context, req *agentv1.ReportJobStatusRequest) (*agentv1.ReportJobStatusResponse, error) {
	s := a.s
	id, err := callerAgent(ctx, req.GetAgentId())
	if err != nil {
		return nil, err
	}
	if err := requireID("job_id", req.GetJobId()); err != nil {
		return nil, err
	}
	to := req.GetStatus()
	if to != jobstate.Running && !jobstate.Terminal(to) || to == jobstate.Skipped {
		return nil, invalid("status", "an agent reports RUNNING or a final status, got %s", to)
	}
	if req.GetLogLines() < 0 {
		return nil, invalid("log_lines", "must not be negative, got %d", req.GetLogLines())
	}
	rep := lifecycle.Report{AgentID: id, JobID: req.GetJobId(), Attempt: req.GetAttempt(), Status: to,
		ExitCode: req.GetExitCode(), Message: req.GetMessage(), LogLines: req.GetLogLines(),
		Reason: jobstate.FromEndReason(req.GetReason(), jobstate.ReasonNone)}
	if t := req.GetTimestamp(); t.IsValid() {
		rep.Began = t.AsTime()
	}
	rep.Outputs, rep.SecretOutputs = req.GetOutputs(), req.GetSecretOutputs()
	// With an artifact store, artifacts are recorded as their uploads are
	// stored: the report's list records nothing that was not. Without one,
	// the server keeps their descriptions.
	for _, a := range req.GetArtifacts() {
		if s.storage.objects != nil {
			break
		}
		art := store.Artifact{Path: a.GetPath(), SizeBytes: a.GetSizeBytes(), SHA256: a.GetSha256()}
		if a.GetCreatedAt() != nil {
			art.CreatedAt = a.GetCreatedAt().AsTime()
		}
		if a.GetExpiresAt() != nil {
			art.ExpiresAt = a.GetExpiresAt().AsTime()
		}
		rep.Artifacts = append(rep.Artifacts, art)
	}
	j, err := s.life.Report(ctx, rep)
	if err != nil {
		return nil, storeError(err, "job "+req.GetJobId())
	}
	return &agentv1.ReportJobStatusResponse{CancelRequested: j.CancelRequested && j.Status == jobstate.Name(jobstate.Running)}, nil
}

// ReportJobLog implements AgentService.ReportJobLog.
func (a *AgentServer) ReportJobLog(ctx context.Context, req *agentv1.ReportJobLogRequest) (*agentv1.ReportJobLogResponse, error) {
	s := a.s
	id, err := callerAgent(ctx, req.GetAgentId())
	if err != nil {
		return nil, err
	}
	last, err := s.appendLog(ctx, id, req.GetJobId(), req.GetAttempt(), req.GetChunks(), req.GetPacked(), req.GetFirstLine())
	if err != nil {
		return nil, err
	}
	return &agentv1.ReportJobLogResponse{LastLine: last}, nil
}

// appendLog stores a batch of log lines that agent agentID sends for an
// attempt: only the attempt's lease holder may (lifecycle.MayLog), and
// nothing of a refused batch is stored.
func (s *Service) appendLog(ctx context.Context, agentID, jobID string, attempt int32, chunks []*agentv1.LogChunk, packed []byte, first int64) (int64, error) {
	if err := requireID("job_id", jobID); err != nil {
		return 0, err
	}
	if attempt < 1 {
		return 0, invalid("attempt", "must be at least 1, got %d", attempt)
	}
	if len(packed) > 0 && len(chunks) > 0 {
		return 0, invalid("packed", "send chunks or packed lines, not both")
	}
	// last is the highest line the batch holds (0 without lines).
	var last int64
	switch {
	case len(chunks) > 0:
		last = chunks[len(chunks)-1].GetLineNumber()
	case len(packed) > 0:
		if first < 1 {
			return 0, invalid("first_line", "must be at least 1 with packed lines, got %d", first)
		}
		n, err := logpack.Count(packed)
		if err != nil {
			return 0, invalid("packed", "%v", logpack.ErrCorrupt)
		}
		last = first + int64(n) - 1
	}
	j, err := s.store.GetJob(ctx, jobID)
	if err != nil {
		return 0, storeError(err, "job "+jobID)
	}
	if attempt > j.Attempt {
		return 0, invalid("attempt", "job %s has no attempt %d yet", jobID, attempt)
	}
	if err := lifecycle.MayLog(j, agentID, attempt, last); err != nil {
		return 0, storeError(err, "job "+jobID)
	}
	if len(packed) == 0 {
		if len(chunks) == 0 {
			return s.store.LastLogLine(ctx, jobID, attempt)
		}
		lines := make([]store.LogLine, len(chunks))
		now := s.now()
		for i, c := range chunks {
			if c.GetLineNumber() < 1 || (i > 0 && c.GetLineNumber() != lines[i-1].Line+1) {
				return 0, invalid(fmt.Sprintf("chunks[%d].line_number", i), "must be at least 1 and follow the previous line, got %d", c.GetLineNumber())
			}
			t := now
			if c.GetTimestamp() != nil {
				t = c.GetTimestamp().AsTime()
			}
			lines[i] = store.LogLine{Line: c.GetLineNumber(), Time: t, Level: int16(c.GetLevel()), Stream: int16(c.GetStream()), Content: c.GetContent()}
		}
		first, packed = lines[0].Line, logpack.Encode(lines)
	}
	last, count, err := s.store.AppendPacked(ctx, jobID, attempt, first, packed)
	switch {
	case errors.Is(err, logpack.ErrCorrupt):
		return 0, invalid("packed", "%v", logpack.ErrCorrupt)
	case err != nil:
		return 0, storeError(err, "log of job "+jobID)
	}
	// Followers skip lines they already have, so a pack partly stored
	// before (a resent batch) does no harm here.
	if end := first + int64(count) - 1; count > 0 && last >= end {
		s.logs.Publish(jobID, attempt, store.Pack{First: first, Last: end, Data: packed})
		s.cfg.Metrics.LogIngested(count, len(packed))
		if s.peers != nil {
			s.peers.Send(ctx, peers.Log, jobID)
		}
	}
	return last, nil
}

// CancelJob implements AgentService.CancelJob: a long poll for cancel
// instructions. Each instruction is sent once per server process; heartbeats
// repeat them should one be lost.
func (a *AgentServer) CancelJob(ctx context.Context, req *agentv1.CancelJobRequest) (*agentv1.CancelJobResponse, error) {
	s := a.s
	id, err := callerAgent(ctx, req.GetAgentId())
	if err != nil {
		return nil, err
	}
	wait, err := s.pollWait(req.GetWait())
	if err != nil {
		return nil, err
	}
	out, err := dispatch.Poll(ctx, s.cancels.Get(id), wait, func() ([]*agentv1.JobCancellation, bool, error) {
		out, err := s.pendingCancels(ctx, id)
		return out, len(out) > 0, err
	})
	if err != nil {
		return nil, storeError(err, "cancellations")
	}
	return &agentv1.CancelJobResponse{Cancellations: out}, nil
}

// pollWait reads the wait of a long poll, capped by the server.
func (s *Service) pollWait(d *durationpb.Duration) (time.Duration, error) {
	wait := d.AsDuration()
	if wait < 0 {
		return 0, invalid("wait", "must not be negative")
	}
	return min(wait, s.cfg.MaxPollWait), nil
}

func (s *Service) pendingCancels(ctx context.Context, agentID string) ([]*agentv1.JobCancellation, error) {
	running, err := s.store.RunningJobs(ctx, agentID)
	if err != nil {
		return nil, storeError(err, "jobs")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sent := s.delivered[agentID]
	var out []*agentv1.JobCancellation
	still := make(map[string]bool, len(sent))
	for _, j := range running {
		key := fmt.Sprintf("%s/%d", j.ID, j.Attempt)
		if !j.CancelRequested {
			continue
		}
		still[key] = true
		if sent[key] {
			continue
		}
		out = append(out, &agentv1.JobCancellation{JobId: j.ID, Attempt: j.Attempt, Reason: j.Message})
	}
	// Forget jobs that are no longer running, so the record stays small.
	s.delivered[agentID] = still
	return out, nil
}

// GetAgent implements AgentService.GetAgent.
func (a *AgentServer) GetAgent(ctx context.Context, req *agentv1.GetAgentRequest) (*agentv1.GetAgentResponse, error) {
	if err := requireID("agent_id", req.GetAgentId()); err != nil {
		return nil, err
	}
	ag, err := a.s.store.GetAgent(ctx, req.GetAgentId())
	if err != nil {
		return nil, storeError(err, "agent "+req.GetAgentId())
	}
	return &agentv1.GetAgentResponse{Agent: a.s.agentProto(ctx, ag, -1)}, nil
}

// ListAgents implements AgentService.ListAgents.
func (a *AgentServer) ListAgents(ctx context.Context, req *agentv1.ListAgentsRequest) (*agentv1.ListAgentsResponse, error) {
	s := a.s
	p, err := page(req.GetPageSize(), req.GetPageToken(), req.GetOrderBy(), store.AgentColumns, store.Order{Column: "name"})
	if err != nil {
		return nil, err
	}
	sel, err := labels.Parse(req.GetLabelSelector())
	if err != nil {
		return nil, selectorError("label_selector", err)
	}
	counts, err := s.store.RunningCounts(ctx)
	if err != nil {
		return nil, storeError(err, "agents")
	}
	want := req.GetStatus()
	filter := store.AgentFilter{Match: func(ag *store.Agent) bool {
		if !sel.Matches(ag.Labels) {
			return false
		}
		return want == agentv1.AgentStatus_AGENT_STATUS_UNSPECIFIED || agentStatus(ag, counts[ag.ID]) == want
	}}
	agents, total, err := s.store.ListAgents(ctx, filter, p)
	if err != nil {
		return nil, storeError(err, "agents")
	}
	resp := &agentv1.ListAgentsResponse{TotalSize: int32(total)}
	page := newPageBytes()
	for _, ag := range agents {
		a := s.agentProto(ctx, ag, counts[ag.ID])
		if !page.take(a) {
			break
		}
		resp.Agents = append(resp.Agents, a)
	}
	resp.NextPageToken = nextToken(p, len(resp.Agents), total)
	return resp, nil
}

func agentStatus(a *store.Agent, running int) agentv1.AgentStatus {
	switch {
	case !a.Online:
		return agentv1.AgentStatus_AGENT_STATUS_OFFLINE
	case running == 0:
		return agentv1.AgentStatus_AGENT_STATUS_IDLE
	case running >= int(a.MaxJobs):
		return agentv1.AgentStatus_AGENT_STATUS_BUSY
	}
	return agentv1.AgentStatus_AGENT_STATUS_ONLINE
}

// agentProto converts an agent; running < 0 counts its running jobs.
func (s *Service) agentProto(ctx context.Context, a *store.Agent, running int) *agentv1.Agent {
	if running < 0 {
		n, err := s.store.CountRunning(ctx, a.ID)
		if err != nil {
			s.log.Warn("count running jobs", "agent", a.ID, "err", err)
		}
		running = n
	}
	out := &agentv1.Agent{
		Id:                a.ID,
		Name:              a.Name,
		Hostname:          a.Hostname,
		Os:                a.OS,
		Arch:              a.Arch,
		Version:           a.Version,
		Labels:            a.Labels,
		MaxConcurrentJobs: a.MaxJobs,
		RunningJobs:       int32(running),
		Status:            agentStatus(a, running),
		RegisteredAt:      ts(a.RegisteredAt),
		LastHeartbeatAt:   ts(a.LastHeartbeatAt),
		Revoked:           a.Revoked,
		Plugins:           a.Plugins,
		Trusted:           a.Trusted,
	}
	switch {
	case a.TrustMarked:
		out.TrustedBecause = "marked trusted by an admin"
	case a.Trusted:
		out.TrustedBecause = "carries a trusted label"
	}
	if len(a.Metrics) > 0 {
		m := new(agentv1.AgentMetrics)
		if protojson.Unmarshal(a.Metrics, m) == nil {
			out.Metrics = m
		}
	}
	return out
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}

// RevokeAgent implements AgentService.RevokeAgent.
func (a *AgentServer) RevokeAgent(ctx context.Context, req *agentv1.RevokeAgentRequest) (*agentv1.RevokeAgentResponse, error) {
	s := a.s
	if err := requireID("agent_id", req.GetAgentId()); err != nil {
		return nil, err
	}
	agent, err := s.store.ModifyAgent(ctx, req.GetAgentId(), func(ag *store.Agent) error {
		ag.Revoked, ag.Online, ag.TokenHash = true, false, ""
		return nil
	}, "revoked", "online", "token_hash")
	if err != nil {
		return nil, storeError(err, "agent "+req.GetAgentId())
	}
	s.auth.Forget(agent.ID)
	s.closeChannel(agent.ID, errRevoked)
	if s.peers != nil {
		s.peers.Send(ctx, peers.Revoke, agent.ID)
	}
	lost, err := s.life.LoseAgentJobs(ctx, agent.ID, jobstate.ReasonAgentRevoked, "agent revoked")
	if err != nil {
		return nil, storeError(err, "agent jobs")
	}
	reason := strings.TrimSpace(req.GetReason())
	s.log.Warn("agent revoked", "agent", agent.Name, "id", agent.ID, "reason", reason, "jobs_requeued", lost)
	s.publishAgent(agent, jobv1.EventType_EVENT_TYPE_AGENT_OFFLINE, "revoked: "+reason)
	return &agentv1.RevokeAgentResponse{Agent: s.agentProto(ctx, agent, 0)}, nil
}

// agentPlugins checks the plugin capabilities an agent announces: plugin
// names, "*" (any) or "-" (none), alone.
func agentPlugins(in []string) ([]string, error) {
	var out []string
	for i, p := range in {
		p = strings.TrimSpace(p)
		field := fmt.Sprintf("plugins[%d]", i)
		switch {
		case p == "*" || p == "-":
			if len(in) > 1 {
				return nil, invalid(field, "%q stands alone", p)
			}
		default:
			if _, version, err := jobstep.ParseUses(p); err != nil || version != "" {
				return nil, invalid(field, "%q is not a plugin name", p)
			}
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		out = []string{"*"}
	}
	return out, nil
}
