package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// link is the agent's end of an open AgentChannel. Requests that expect an
// answer (status updates, log batches) wait for their acknowledgement, keyed
// by kind, job and attempt: the agent has at most one of each in flight.
type link struct {
	stream jobv1.StreamService_AgentChannelClient
	sendMu sync.Mutex

	mu      sync.Mutex
	waiters map[ackKey]chan *jobv1.AgentChannelResponse
	done    chan struct{} // closed when the channel breaks
}

type ackKey struct {
	status  bool // a status ack, else a log ack
	job     string
	attempt int32
}

var errLinkDown = errors.New("agent channel down")

func (l *link) send(m *jobv1.AgentChannelRequest) error {
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	return l.stream.Send(m)
}

// call sends m and waits for the acknowledgement with key k.
func (l *link) call(ctx context.Context, k ackKey, m *jobv1.AgentChannelRequest) (*jobv1.AgentChannelResponse, error) {
	ch := make(chan *jobv1.AgentChannelResponse, 1)
	l.mu.Lock()
	if l.waiters == nil {
		l.mu.Unlock()
		return nil, errLinkDown
	}
	l.waiters[k] = ch
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		if l.waiters != nil {
			delete(l.waiters, k)
		}
		l.mu.Unlock()
	}()
	if err := l.send(m); err != nil {
		return nil, fmt.Errorf("%w: %v", errLinkDown, err)
	}
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case resp := <-ch:
		return resp, nil
	case <-l.done:
		return nil, errLinkDown
	case <-t.C:
		return nil, fmt.Errorf("%w: no acknowledgement in 30s", errLinkDown)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *link) deliver(k ackKey, resp *jobv1.AgentChannelResponse) {
	l.mu.Lock()
	ch := l.waiters[k]
	l.mu.Unlock()
	if ch != nil {
		select {
		case ch <- resp:
		default:
		}
	}
}

func (l *link) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.waiters != nil {
		l.waiters = nil
		close(l.done)
	}
}

func (a *Agent) currentLink() *link {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.link
}

// ackError turns a refusal carried in an acknowledgement into a gRPC error.
func ackError(msg string, code int32) error {
	if msg == "" {
		return nil
	}
	return grpcstatus.Error(codes.Code(code), msg)
}

// sendStatus reports a job status over the channel, or by a unary call
// while the channel is down.
func (a *Agent) sendStatus(ctx context.Context, req *agentv1.ReportJobStatusRequest) (bool, error) {
	if l := a.currentLink(); l != nil {
		resp, err := l.call(ctx, ackKey{true, req.GetJobId(), req.GetAttempt()},
			&jobv1.AgentChannelRequest{Payload: &jobv1.AgentChannelRequest_StatusUpdate{StatusUpdate: req}})
		if err == nil {
			ack := resp.GetStatusAck()
			return ack.GetCancelRequested(), ackError(ack.GetError(), ack.GetCode())
		}
		if !errors.Is(err, errLinkDown) {
			return false, err
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := a.rpc.ReportJobStatus(cctx, req)
	return resp.GetCancelRequested(), err
}

// sendLog ships a batch of log lines over the channel, or by a unary call
// while the channel is down; it returns the last line the server holds.
func (a *Agent) sendLog(ctx context.Context, req *agentv1.ReportJobLogRequest) (int64, error) {
	if l := a.currentLink(); l != nil {
		resp, err := l.call(ctx, ackKey{false, req.GetJobId(), req.GetAttempt()},
			&jobv1.AgentChannelRequest{Payload: &jobv1.AgentChannelRequest_Log{Log: req}})
		if err == nil {
			ack := resp.GetLogAck()
			return ack.GetLastLine(), ackError(ack.GetError(), ack.GetCode())
		}
		if !errors.Is(err, errLinkDown) {
			return 0, err
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := a.rpc.ReportJobLog(cctx, req)
	return resp.GetLastLine(), err
}

// channelLoop keeps an AgentChannel open, reconnecting with backoff and
// jitter (and registering again when the server forgot the agent), until ctx
// ends. Jobs it is given run in jobsCtx.
func (a *Agent) channelLoop(ctx, jobsCtx context.Context, jobs *sync.WaitGroup) error {
	for failures := 0; ctx.Err() == nil; {
		_, session := a.identity()
		err := a.channelSession(ctx, jobsCtx, jobs)
		if ctx.Err() != nil {
			return nil
		}
		if grpcstatus.Code(err) == codes.Unimplemented {
			return err
		}
		failures++
		if err == nil {
			failures = 0
		}
		a.log.Warn("agent channel lost; reconnecting", "err", err)
		if !a.recover(ctx, session, err, failures) {
			return nil
		}
	}
	return nil
}

// channelSession runs one AgentChannel until it breaks.
func (a *Agent) channelSession(ctx, jobsCtx context.Context, jobs *sync.WaitGroup) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := a.streams.AgentChannel(ctx)
	if err != nil {
		return err
	}
	id, _ := a.identity()
	l := &link{stream: stream, waiters: make(map[ackKey]chan *jobv1.AgentChannelResponse), done: make(chan struct{})}
	defer l.close()
	if err := l.send(&jobv1.AgentChannelRequest{Payload: &jobv1.AgentChannelRequest_Hello{Hello: &jobv1.ChannelHello{AgentId: id}}}); err != nil {
		return err
	}
	a.mu.Lock()
	a.link = l
	free := a.free
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		if a.link == l {
			a.link = nil
		}
		a.mu.Unlock()
	}()
	if free > 0 {
		if err := l.send(jobRequest(free)); err != nil {
			return err
		}
	}
	a.log.Info("agent channel open", "server", a.cfg.Server)
	go a.channelHeartbeats(ctx, l, id)
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		switch p := resp.GetPayload().(type) {
		case *jobv1.AgentChannelResponse_JobAssignment:
			a.startJob(jobsCtx, id, p.JobAssignment.GetJob(), jobs)
		case *jobv1.AgentChannelResponse_Cancel:
			a.cancelJob(p.Cancel.GetJobId(), p.Cancel.GetReason())
		case *jobv1.AgentChannelResponse_HeartbeatAck:
			a.heartbeatAnswered(p.HeartbeatAck)
		case *jobv1.AgentChannelResponse_ConfigUpdate:
			a.log.Info("config update from the server", "labels", p.ConfigUpdate.GetLabels())
			if d := p.ConfigUpdate.GetHeartbeatInterval().AsDuration(); d > 0 {
				a.mu.Lock()
				a.heartbeat = d
				a.mu.Unlock()
			}
		case *jobv1.AgentChannelResponse_StatusAck:
			l.deliver(ackKey{true, p.StatusAck.GetJobId(), p.StatusAck.GetAttempt()}, resp)
		case *jobv1.AgentChannelResponse_LogAck:
			l.deliver(ackKey{false, p.LogAck.GetJobId(), p.LogAck.GetAttempt()}, resp)
		case *jobv1.AgentChannelResponse_Error:
			err := ackError(p.Error.GetError(), p.Error.GetCode())
			switch grpcstatus.Code(err) {
			case codes.NotFound, codes.Unauthenticated:
				return err // registered again by the caller
			}
			a.log.Warn("server refused a message", "err", err)
		}
	}
}

func jobRequest(n int) *jobv1.AgentChannelRequest {
	return &jobv1.AgentChannelRequest{Payload: &jobv1.AgentChannelRequest_JobRequest{JobRequest: &jobv1.JobRequest{MaxJobs: int32(n)}}}
}

// startJob runs an assigned job in its own goroutine, holding a slot.
func (a *Agent) startJob(jobsCtx context.Context, agentID string, job *agentv1.Job, jobs *sync.WaitGroup) {
	a.mu.Lock()
	a.free--
	a.mu.Unlock()
	jobs.Go(func() {
		defer a.slotFreed()
		a.runJob(jobsCtx, agentID, job)
	})
}

// slotFreed returns a slot and asks for one more job.
func (a *Agent) slotFreed() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.free++
	if a.link != nil {
		if err := a.link.send(jobRequest(1)); err != nil {
			a.log.Debug("ask for a job", "err", err)
		}
	}
}

func (a *Agent) channelHeartbeats(ctx context.Context, l *link, id string) {
	for {
		a.mu.Lock()
		every := a.heartbeat
		a.mu.Unlock()
		if every <= 0 {
			every = 5 * time.Second
		}
		select {
		case <-time.After(every):
		case <-ctx.Done():
			return
		case <-l.done:
			return
		}
		if err := l.send(&jobv1.AgentChannelRequest{Payload: &jobv1.AgentChannelRequest_Heartbeat{Heartbeat: a.heartbeatRequest(ctx, id)}}); err != nil {
			return
		}
	}
}
