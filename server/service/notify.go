package service

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/server/events"
	"github.com/go-arcade/arcade/server/peers"
	"github.com/go-arcade/arcade/server/store"
)

// Events returns the bus on which the server's events are published.
func (s *Service) Events() *events.Bus { return s.events }

func (s *Service) publishJob(j *store.Job, typ jobv1.EventType, msg string) {
	s.cfg.Metrics.JobEvent(j, typ)
	attrs := map[string]string{"status": j.Status, "attempt": fmt.Sprint(j.Attempt), "name": j.Name}
	if j.AgentID != "" {
		attrs["agent_id"], attrs["agent"] = j.AgentID, j.AgentName
	}
	if j.RunID != "" {
		attrs["run_id"], attrs["pipeline_id"] = j.RunID, j.PipelineID
	}
	s.publish(&jobv1.Event{Type: typ, ResourceType: events.Job, ResourceId: j.ID, Message: msg, Attributes: attrs})
}

func (s *Service) publishRun(r *store.PipelineRun) {
	attrs := map[string]string{"status": r.Status, "pipeline_id": r.PipelineID, "pipeline": r.PipelineName, "number": fmt.Sprint(r.Number)}
	if r.Status == "running" && r.JustStarted {
		attrs["started"] = "true" // the change that started it
	}
	if r.Commit != "" {
		attrs["commit"], attrs["ref"] = r.Commit, r.Ref
	}
	s.publish(&jobv1.Event{Type: jobv1.EventType_EVENT_TYPE_PIPELINE_RUN_STATUS, ResourceType: events.PipelineRun,
		ResourceId: r.ID, Message: r.Message, Attributes: attrs})
}

func (s *Service) publishAgent(a *store.Agent, typ jobv1.EventType, msg string) {
	s.publish(&jobv1.Event{Type: typ, ResourceType: events.Agent, ResourceId: a.ID, Message: msg,
		Attributes: map[string]string{"name": a.Name}})
}

// OnLocalEvent makes fn see every event that originates on this replica
// (not those relayed from other replicas), after the bus has it. fn must
// not block. Call it before serving.
func (s *Service) OnLocalEvent(fn func(*jobv1.Event)) { s.local = append(s.local, fn) }

// Publish sends an event to this replica's subscribers and to the other
// replicas'.
func (s *Service) Publish(e *jobv1.Event) { s.publish(e) }

// publish sends an event to this replica's subscribers and to the other
// replicas'.
func (s *Service) publish(e *jobv1.Event) {
	if e.GetResourceType() == events.Agent {
		s.dispatch.Forget(e.GetResourceId()) // its labels or state changed
	}
	s.events.Publish(e)
	if s.history != nil {
		s.history.Record(e)
	}
	for _, fn := range s.local {
		fn(e)
	}
	if s.peers != nil {
		b, err := protojson.Marshal(e)
		if err == nil {
			s.peers.Send(context.Background(), peers.Event, string(b))
		}
	}
}
