package service

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/core/labels"
	"github.com/go-arcade/arcade/server/store"
)

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func dur(ms int64) *durationpb.Duration {
	if ms == 0 {
		return nil
	}
	return durationpb.New(time.Duration(ms) * time.Millisecond)
}

func status(j *store.Job) agentv1.JobStatus {
	s, err := jobstate.Parse(j.Status)
	if err != nil {
		return agentv1.JobStatus_JOB_STATUS_UNSPECIFIED
	}
	return s
}

func artifactConfig(raw []byte) *agentv1.ArtifactConfig {
	if len(raw) == 0 {
		return nil
	}
	cfg := new(agentv1.ArtifactConfig)
	if err := protojson.Unmarshal(raw, cfg); err != nil {
		return nil
	}
	return cfg
}

func selectorProto(text string) *agentv1.LabelSelector {
	sel, err := labels.Parse(text)
	if err != nil || sel.Empty() {
		return nil
	}
	return sel.Proto()
}

// containerOptions reads a job's stored container options; nil without.
func containerOptions(b []byte) *agentv1.ContainerOptions {
	if len(b) == 0 {
		return nil
	}
	o := &agentv1.ContainerOptions{}
	if err := protojson.Unmarshal(b, o); err != nil {
		return nil
	}
	return o
}

func jobDetail(j *store.Job) *jobv1.JobDetail {
	d := &jobv1.JobDetail{
		Id:              j.ID,
		Name:            j.Name,
		Status:          status(j),
		Commands:        j.Commands,
		Env:             j.Env,
		Timeout:         dur(j.TimeoutMS),
		Image:           j.Image,
		Container:       containerOptions(j.Container),
		Artifacts:       artifactConfig(j.Artifacts),
		LogArchived:     j.LogArchivedAttempts > 0 && j.LogArchivedAttempts >= j.Attempt,
		Retries:         j.Retries,
		LabelSelector:   selectorProto(j.Selector),
		Labels:          j.Labels,
		CreatedAt:       ts(j.CreatedAt),
		StartedAt:       ts(j.StartedAt),
		FinishedAt:      ts(j.FinishedAt),
		UpdatedAt:       ts(j.UpdatedAt),
		AgentId:         j.AgentID,
		AgentName:       j.AgentName,
		ExitCode:        j.ExitCode,
		Attempt:         j.Attempt,
		Message:         j.Message,
		CancelRequested: j.CancelRequested,
		PipelineId:      j.PipelineID,
		RunId:           j.RunID,
		Stage:           j.Stage,
		SecretNames:     j.SecretNames,
		Steps:           storedSteps(j),
		SecretRefs:      j.SecretRefs,
		TrustedAgents:   j.TrustedAgents,
		TrustReason:     j.TrustReason,
	}
	dataDetail(j, d)
	return d
}

// agentJob is a job as the agent that runs it receives it, its own
// secrets included; an error says why they cannot be opened (the job must
// not run without them).
func (s *Service) agentJob(j *store.Job) (*agentv1.Job, error) {
	var sec map[string]string
	if len(j.Secrets) > 0 {
		var err error
		if s.cfg.Secrets == nil {
			err = errors.New("this server has no secret key")
		} else {
			sec, err = s.cfg.Secrets.Open(j.Secrets)
		}
		if err != nil {
			return nil, fmt.Errorf("the job's secrets cannot be opened: %w", err)
		}
	}
	return &agentv1.Job{
		Secrets:       sec,
		Id:            j.ID,
		Name:          j.Name,
		Commands:      j.Commands,
		Env:           j.Env,
		Timeout:       dur(j.TimeoutMS),
		Image:         j.Image,
		Container:     containerOptions(j.Container),
		Artifacts:     artifactConfig(j.Artifacts),
		Retries:       j.Retries,
		LabelSelector: selectorProto(j.Selector),
		Attempt:       j.Attempt,
		Steps:         storedSteps(j),
	}, nil
}

func logChunk(l store.LogLine) *agentv1.LogChunk {
	return &agentv1.LogChunk{
		LineNumber: l.Line,
		Timestamp:  timestamppb.New(l.Time),
		Level:      agentv1.LogLevel(l.Level),
		Content:    l.Content,
		Stream:     agentv1.LogStream(l.Stream),
	}
}

func artifact(a store.Artifact) *agentv1.Artifact {
	return &agentv1.Artifact{
		Path:      a.Path,
		SizeBytes: a.SizeBytes,
		Sha256:    a.SHA256,
		CreatedAt: ts(a.CreatedAt),
		ExpiresAt: ts(a.ExpiresAt),
		JobId:     a.JobID,
		Attempt:   a.Attempt,
		Stored:    a.Stored,
	}
}
