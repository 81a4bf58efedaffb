package service

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/server/dispatch"
	"github.com/go-arcade/arcade/server/events"
	"github.com/go-arcade/arcade/server/store"
)

// AgentChannel implements StreamService.AgentChannel: one long-lived stream
// per agent. The agent opens it with a hello, asks for jobs with job
// requests, and sends heartbeats, status updates, log batches and metrics;
// the server answers with acknowledgements and pushes job assignments,
// cancel commands and config updates the moment they exist.
func (ss *StreamServer) AgentChannel(stream grpc.BidiStreamingServer[jobv1.AgentChannelRequest, jobv1.AgentChannelResponse]) error {
	s := ss.s
	ctx, cancelCause := context.WithCancelCause(stream.Context())
	cancel := func() { cancelCause(nil) }
	defer cancel()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return invalid("hello", "the first message of a channel must be a hello")
	}
	id, err := callerAgent(ctx, hello.GetAgentId())
	if err != nil {
		return err
	}
	if _, err := s.store.GetAgent(ctx, id); err != nil {
		return storeError(err, "agent "+id)
	}
	ch := &agentChannel{s: s, agentServer: s.AgentServer(), stream: stream, id: id, ready: make(chan struct{}, 1)}
	ch.waiter = s.dispatch.Wait(id, ch.deliver)
	open := &openChannel{close: cancelCause}
	s.mu.Lock()
	if old := s.channels[id]; old != nil {
		old.close(errors.New("the agent opened a new channel"))
	}
	s.channels[id] = open
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.channels[id] == open {
			delete(s.channels, id)
		}
		s.mu.Unlock()
	}()
	s.log.Debug("agent channel open", "agent", id)
	defer s.log.Debug("agent channel closed", "agent", id)

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { ch.assign(ctx) })
	wg.Go(func() { ch.pushCancels(ctx) })
	wg.Go(func() { ch.pushConfig(ctx) })
	// Receive in its own goroutine, so that closing the channel from the
	// server's side (a revocation) does not wait for the agent to speak.
	msgs := make(chan *jobv1.AgentChannelRequest)
	recvErr := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case msgs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case req := <-msgs:
			if err := ch.handle(ctx, req); err != nil {
				return err
			}
		case err := <-recvErr:
			if errors.Is(err, io.EOF) || ctx.Err() != nil || errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), errRevoked) {
				return grpcstatus.Error(codes.PermissionDenied, "this agent was revoked")
			}
			return grpcstatus.FromContextError(ctx.Err()).Err()
		}
	}
}

// openChannel is an agent's open AgentChannel, which the server may close.
type openChannel struct {
	close context.CancelCauseFunc
}

// errRevoked closes the channel of a revoked agent.
var errRevoked = errors.New("agent revoked")

// closeChannel closes an agent's open channel, if it has one.
func (s *Service) closeChannel(agentID string, cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.channels[agentID]; c != nil {
		c.close(cause)
	}
}

type agentChannel struct {
	s           *Service
	agentServer *AgentServer
	stream      grpc.BidiStreamingServer[jobv1.AgentChannelRequest, jobv1.AgentChannelResponse]
	id          string

	sendMu sync.Mutex

	// waiter asks the dispatcher for the jobs the agent requested; they
	// arrive in queue (deliver) and assign sends them.
	waiter *dispatch.Waiter
	qmu    sync.Mutex
	queue  []*store.Job
	gone   bool
	ready  chan struct{}
}

// deliver takes jobs claimed for the agent; false once the channel is gone.
func (ch *agentChannel) deliver(jobs []*store.Job) bool {
	ch.qmu.Lock()
	defer ch.qmu.Unlock()
	if ch.gone {
		return false
	}
	ch.queue = append(ch.queue, jobs...)
	select {
	case ch.ready <- struct{}{}:
	default:
	}
	return true
}

func (ch *agentChannel) send(m *jobv1.AgentChannelResponse) error {
	ch.sendMu.Lock()
	defer ch.sendMu.Unlock()
	return ch.stream.Send(m)
}

func codeOf(err error) (string, int32) {
	st := grpcstatus.Convert(err)
	return st.Message(), int32(st.Code())
}

// handle answers one message of the agent. Refused requests are answered on
// the channel; only a broken stream ends it.
func (ch *agentChannel) handle(ctx context.Context, req *jobv1.AgentChannelRequest) error {
	switch p := req.GetPayload().(type) {
	case *jobv1.AgentChannelRequest_Heartbeat:
		p.Heartbeat.AgentId = ch.id
		resp, err := ch.agentServer.Heartbeat(ctx, p.Heartbeat)
		if err != nil {
			msg, code := codeOf(err)
			return ch.send(&jobv1.AgentChannelResponse{Payload: &jobv1.AgentChannelResponse_Error{Error: &jobv1.ChannelError{Error: msg, Code: code}}})
		}
		return ch.send(&jobv1.AgentChannelResponse{Payload: &jobv1.AgentChannelResponse_HeartbeatAck{HeartbeatAck: resp}})
	case *jobv1.AgentChannelRequest_Metrics:
		_, err := ch.agentServer.Heartbeat(ctx, &agentv1.HeartbeatRequest{AgentId: ch.id, Metrics: p.Metrics})
		return ignoreRefusal(err)
	case *jobv1.AgentChannelRequest_StatusUpdate:
		u := p.StatusUpdate
		u.AgentId = ch.id
		ack := &jobv1.StatusAck{JobId: u.GetJobId(), Attempt: u.GetAttempt(), Status: u.GetStatus()}
		resp, err := ch.agentServer.ReportJobStatus(ctx, u)
		if err != nil {
			ack.Error, ack.Code = codeOf(err)
		} else {
			ack.CancelRequested = resp.GetCancelRequested()
		}
		return ch.send(&jobv1.AgentChannelResponse{Payload: &jobv1.AgentChannelResponse_StatusAck{StatusAck: ack}})
	case *jobv1.AgentChannelRequest_Log:
		l := p.Log
		ack := &jobv1.LogAck{JobId: l.GetJobId(), Attempt: l.GetAttempt()}
		last, err := ch.s.appendLog(ctx, ch.id, l.GetJobId(), l.GetAttempt(), l.GetChunks(), l.GetPacked(), l.GetFirstLine())
		if err != nil {
			ack.Error, ack.Code = codeOf(err)
		}
		ack.LastLine = last
		return ch.send(&jobv1.AgentChannelResponse{Payload: &jobv1.AgentChannelResponse_LogAck{LogAck: ack}})
	case *jobv1.AgentChannelRequest_JobRequest:
		ch.waiter.Add(int(p.JobRequest.GetMaxJobs()))
		return nil
	case *jobv1.AgentChannelRequest_Hello:
		return invalid("hello", "sent twice")
	}
	return invalid("payload", "empty or unknown message")
}

// ignoreRefusal drops errors the agent cannot act on for fire-and-forget
// messages, but keeps those that mean the stream is done.
func ignoreRefusal(err error) error {
	switch grpcstatus.Code(err) {
	case codes.Canceled, codes.Unavailable:
		return err
	}
	return nil
}

// assign sends the jobs the dispatcher claims for the agent. When the
// channel ends, jobs not sent go back to the queue.
func (ch *agentChannel) assign(ctx context.Context) {
	defer func() {
		ch.waiter.Close()
		ch.qmu.Lock()
		ch.gone = true
		left := ch.queue
		ch.queue = nil
		ch.qmu.Unlock()
		ch.s.dispatch.Release(left)
	}()
	for {
		select {
		case <-ch.ready:
		case <-ctx.Done():
			return
		}
		ch.qmu.Lock()
		jobs := ch.queue
		ch.queue = nil
		ch.qmu.Unlock()
		for i, j := range jobs {
			job := ch.s.handOut(ctx, j)
			if job == nil {
				ch.waiter.Add(1) // the job cannot run and was ended: its slot is free again
				continue
			}
			ch.s.log.Info("job leased", "job", j.ID, "name", j.Name, "attempt", j.Attempt, "agent", j.AgentName, "via", "channel")
			ch.s.cfg.Metrics.JobLeased(j)
			err := ch.send(&jobv1.AgentChannelResponse{Payload: &jobv1.AgentChannelResponse_JobAssignment{JobAssignment: &agentv1.FetchJobResponse{
				Job: job, LeaseExpiresAt: timestamppb.New(j.LeaseExpiresAt)}}})
			if err != nil {
				ch.s.log.Warn("job assignment not delivered; back to the queue", "job", j.ID, "agent", ch.id, "err", err)
				ch.s.dispatch.Release(jobs[i:])
				return
			}
		}
	}
}

// pushCancels sends cancel commands as soon as they are asked for.
func (ch *agentChannel) pushCancels(ctx context.Context) {
	for ctx.Err() == nil {
		out, err := dispatch.Poll(ctx, ch.s.cancels.Get(ch.id), ch.s.cfg.MaxPollWait, func() ([]*agentv1.JobCancellation, bool, error) {
			out, err := ch.s.pendingCancels(ctx, ch.id)
			return out, len(out) > 0, err
		})
		if err != nil {
			if ctx.Err() == nil {
				time.Sleep(time.Second)
			}
			continue
		}
		for _, c := range out {
			if err := ch.send(&jobv1.AgentChannelResponse{Payload: &jobv1.AgentChannelResponse_Cancel{Cancel: c}}); err != nil {
				return
			}
		}
	}
}

// pushConfig sends the agent its labels when someone changes them.
func (ch *agentChannel) pushConfig(ctx context.Context) {
	sub := ch.s.events.Subscribe(events.Filter{ResourceType: events.Agent, ResourceID: ch.id,
		Types: []jobv1.EventType{jobv1.EventType_EVENT_TYPE_AGENT_LABELS_CHANGED}}, 16)
	context.AfterFunc(ctx, sub.Close)
	for range sub.C {
		a, err := ch.s.store.GetAgent(ctx, ch.id)
		if err != nil {
			continue
		}
		err = ch.send(&jobv1.AgentChannelResponse{Payload: &jobv1.AgentChannelResponse_ConfigUpdate{ConfigUpdate: &jobv1.ConfigUpdate{
			Labels: a.Labels, HeartbeatInterval: durationpb.New(ch.s.cfg.HeartbeatInterval)}}})
		if err != nil {
			return
		}
	}
}
