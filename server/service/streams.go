package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	coreevents "github.com/go-arcade/arcade/core/events"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/core/logpack"
	"github.com/go-arcade/arcade/server/eventlog"
	"github.com/go-arcade/arcade/server/events"
	"github.com/go-arcade/arcade/server/store"
)

// StreamServer implements jobv1.StreamServiceServer.
type StreamServer struct {
	jobv1.UnimplementedStreamServiceServer
	s *Service
}

// StreamServer returns the StreamService implementation.
func (s *Service) StreamServer() *StreamServer { return &StreamServer{s: s} }

const (
	// logPage is how many stored lines one read takes.
	logPage = 5000
	// followBuffer is how many live batches a log follower may lag behind
	// before it reads them back from the store instead.
	followBuffer = 64
	// eventBuffer is how many events a stream may lag behind before it is
	// ended with ResourceExhausted.
	eventBuffer = 1024
)

// StreamJobLog implements StreamService.StreamJobLog: the stored lines from
// from_line, then, with follow, new lines as they are stored until the
// attempt ends. Every line comes once, in order, without gaps: a follower
// that falls behind the live feed reads the store until it has caught up.
func (ss *StreamServer) StreamJobLog(req *jobv1.StreamJobLogRequest, stream grpc.ServerStreamingServer[jobv1.StreamJobLogResponse]) error {
	s, ctx := ss.s, stream.Context()
	if err := requireID("job_id", req.GetJobId()); err != nil {
		return err
	}
	if req.GetFromLine() < 0 {
		return invalid("from_line", "must not be negative")
	}
	j, err := s.store.GetJob(ctx, req.GetJobId())
	if err != nil {
		return storeError(err, "job "+req.GetJobId())
	}
	attempt := req.GetAttempt()
	switch {
	case attempt < 0:
		return invalid("attempt", "must not be negative")
	case attempt == 0:
		attempt = j.Attempt
	case attempt > j.Attempt:
		return grpcstatus.Errorf(codes.NotFound, "attempt: job %s has %d attempt(s), not %d", j.ID, j.Attempt, attempt)
	}
	// Follow before reading the store, so that no line stored in between is
	// missed: what arrives twice is skipped by line number.
	f := s.logs.Follow(j.ID, attempt, followBuffer)
	defer f.Close()
	next := max(req.GetFromLine(), 1)
	// send sends the lines of a pack from next on; a pack that starts past
	// next means lines were missed (errBehind).
	send := func(p store.Pack) error {
		if p.Last < next {
			return nil
		}
		if p.First > next {
			return errBehind
		}
		data := p.Data
		if p.First < next {
			var err error
			if data, err = logpack.Skip(data, int(next-p.First)); err != nil {
				return grpcstatus.Errorf(codes.DataLoss, "log of job %s: %v", j.ID, err)
			}
		}
		out := &jobv1.StreamJobLogResponse{}
		if req.GetPacked() {
			out.Packed, out.FirstLine = data, next
		} else {
			lines, err := logpack.Decode(nil, data, next, next)
			if err != nil {
				return grpcstatus.Errorf(codes.DataLoss, "log of job %s: %v", j.ID, err)
			}
			out.Lines = make([]*agentv1.LogChunk, len(lines))
			for i, l := range lines {
				out.Lines[i] = logChunk(l)
			}
		}
		next = p.Last + 1
		return stream.Send(out)
	}
	catchUp := func() error {
		for {
			packs, err := s.readPacks(ctx, j, attempt, next, logPage)
			if err != nil {
				return err
			}
			for _, p := range packs {
				if err := send(p); err != nil {
					return err
				}
			}
			if len(packs) == 0 {
				return nil
			}
		}
	}
	for {
		if err := catchUp(); err != nil {
			return err
		}
		cur, err := s.store.GetJob(ctx, j.ID)
		if err != nil {
			return storeError(err, "job "+j.ID)
		}
		if ended := attempt < cur.Attempt || jobstate.Terminal(status(cur)); ended || !req.GetFollow() {
			if !ended {
				return nil
			}
			// The agent sends every line before it reports the end: what
			// the store holds now is the whole log.
			if err := catchUp(); err != nil {
				return err
			}
			final := status(cur)
			if attempt < cur.Attempt {
				final = agentv1.JobStatus_JOB_STATUS_FAILED
			}
			return stream.Send(&jobv1.StreamJobLogResponse{FinalStatus: final})
		}
	live:
		for {
			select {
			case p := <-f.C:
				switch err := send(p); {
				case errors.Is(err, errBehind):
					break live // missed batches: read them from the store
				case err != nil:
					return err
				}
			case <-f.Ended:
				break live
			case <-ctx.Done():
				return grpcstatus.FromContextError(ctx.Err()).Err()
			}
		}
	}
}

var errBehind = errors.New("follower missed lines")

// UploadJobLog implements StreamService.UploadJobLog: batches of lines from
// an agent, stored as ReportJobLog stores them; the answer is the last line
// stored without a gap.
func (ss *StreamServer) UploadJobLog(stream grpc.ClientStreamingServer[jobv1.UploadJobLogRequest, jobv1.UploadJobLogResponse]) error {
	s, ctx := ss.s, stream.Context()
	var last int64
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&jobv1.UploadJobLogResponse{LastLine: last})
		}
		if err != nil {
			return err
		}
		id, err := callerAgent(ctx, req.GetAgentId())
		if err != nil {
			return err
		}
		if last, err = s.appendLog(ctx, id, req.GetJobId(), req.GetAttempt(), req.GetChunks(), req.GetPacked(), req.GetFirstLine()); err != nil {
			return err
		}
	}
}

// subscribe opens an event subscription for a stream, ending it with the
// stream's context.
func (ss *StreamServer) subscribe(ctx context.Context, f events.Filter) *events.Subscription {
	sub := ss.s.events.Subscribe(f, eventBuffer)
	context.AfterFunc(ctx, sub.Close)
	return sub
}

// next waits for the next event; it ends the stream with ResourceExhausted
// when the subscriber fell too far behind, so it can resume.
func next(ctx context.Context, sub *events.Subscription) (*jobv1.Event, error) {
	e, ok := <-sub.C
	if ok {
		return e, nil
	}
	if sub.Overflowed() {
		return nil, grpcstatus.Error(codes.ResourceExhausted, "the stream fell too far behind; open it again to resume")
	}
	return nil, grpcstatus.FromContextError(ctx.Err()).Err()
}

// maxEventNames bounds the names of one StreamEvents request.
const maxEventNames = 64

// StreamEvents implements StreamService.StreamEvents: with since_id,
// since_time or last, the stored events first (past), then live ones. The
// live subscription opens before the history is read, and an event sent
// from the history is not sent again live.
func (ss *StreamServer) StreamEvents(req *jobv1.StreamEventsRequest, stream grpc.ServerStreamingServer[jobv1.StreamEventsResponse]) error {
	ctx := stream.Context()
	f := events.Filter{Types: req.GetTypes(), ResourceType: req.GetResourceType(), ResourceID: req.GetResourceId()}
	for i, t := range req.GetTypes() {
		if _, ok := jobv1.EventType_name[int32(t)]; !ok || t == jobv1.EventType_EVENT_TYPE_UNSPECIFIED {
			return invalid(fmt.Sprintf("types[%d]", i), "unknown event type %d", t)
		}
	}
	if len(req.GetNames()) > maxEventNames {
		return invalid("names", "at most %d, got %d", maxEventNames, len(req.GetNames()))
	}
	for i, n := range req.GetNames() {
		p, _, err := coreevents.Parse(n)
		if err != nil {
			return invalid(fmt.Sprintf("names[%d]", i), "%v", err)
		}
		f.Names = append(f.Names, p)
	}
	q, err := ss.historyQuery(req, f)
	if err != nil {
		return err
	}
	sub := ss.subscribe(ctx, f)
	subscribed := ss.s.now()
	// sent holds the history's events that may also come live: those since
	// the subscription (a minute of slack for other replicas' clocks).
	sent := map[string]bool{}
	if q != nil {
		past, err := ss.s.history.Read(ctx, *q)
		switch {
		case errors.Is(err, eventlog.ErrUnknownEvent):
			return grpcstatus.Errorf(codes.NotFound, "since_id: event %s is not in the history (it keeps the last %d events of %s)",
				req.GetSinceId(), ss.s.history.Config().MaxEvents, ss.s.history.Config().MaxAge)
		case err != nil:
			return storeError(err, "event history")
		}
		for _, e := range past {
			if !f.Match(e) {
				continue
			}
			if e.GetTimestamp().AsTime().After(subscribed.Add(-time.Minute)) {
				sent[e.GetId()] = true
			}
			if err := stream.Send(&jobv1.StreamEventsResponse{Event: e, Past: true}); err != nil {
				return err
			}
		}
		if err := stream.Send(&jobv1.StreamEventsResponse{HistoryEnd: true}); err != nil {
			return err
		}
	}
	for {
		e, err := next(ctx, sub)
		if err != nil {
			return err
		}
		if sent[e.GetId()] {
			delete(sent, e.GetId())
			continue
		}
		if err := stream.Send(&jobv1.StreamEventsResponse{Event: e}); err != nil {
			return err
		}
	}
}

// historyQuery turns the since fields of a request into a history query;
// nil when the request starts live.
func (ss *StreamServer) historyQuery(req *jobv1.StreamEventsRequest, f events.Filter) (*eventlog.Query, error) {
	set := 0
	for _, on := range []bool{req.GetSinceId() != "", req.GetSinceTime() != nil, req.GetLast() != 0} {
		if on {
			set++
		}
	}
	switch {
	case set == 0:
		return nil, nil
	case set > 1:
		return nil, invalid("since_id", "give one of since_id, since_time and last")
	case req.GetLast() < 0:
		return nil, invalid("last", "must not be negative, got %d", req.GetLast())
	case len(req.GetSinceId()) > 64:
		return nil, invalid("since_id", "longer than an event id")
	}
	if ss.s.history == nil {
		return nil, grpcstatus.Error(codes.FailedPrecondition, "this server keeps no event history")
	}
	q := &eventlog.Query{SinceID: req.GetSinceId(), Last: int(req.GetLast()), ResourceType: f.ResourceType, ResourceID: f.ResourceID}
	if t := req.GetSinceTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, invalid("since_time", "%v", err)
		}
		q.SinceTime = t.AsTime()
	}
	// The names the filter can pass narrow the read; Match decides.
	if len(f.Types) > 0 || len(f.Names) > 0 {
		for _, d := range coreevents.Defs() {
			if slices.Contains(f.Types, d.Type) || slices.ContainsFunc(f.Names, func(p coreevents.Pattern) bool { return p.MatchName(d.Name) }) {
				q.Names = append(q.Names, d.Name)
			}
		}
	}
	return q, nil
}

// StreamJobStatus implements StreamService.StreamJobStatus: the job now,
// then after every change, until it ends.
func (ss *StreamServer) StreamJobStatus(req *jobv1.StreamJobStatusRequest, stream grpc.ServerStreamingServer[jobv1.StreamJobStatusResponse]) error {
	s, ctx := ss.s, stream.Context()
	if err := requireID("job_id", req.GetJobId()); err != nil {
		return err
	}
	sub := ss.subscribe(ctx, events.Filter{ResourceType: events.Job, ResourceID: req.GetJobId()})
	for {
		j, err := s.store.GetJob(ctx, req.GetJobId())
		if err != nil {
			return storeError(err, "job "+req.GetJobId())
		}
		if err := stream.Send(&jobv1.StreamJobStatusResponse{Job: jobDetail(j)}); err != nil {
			return err
		}
		if jobstate.Terminal(status(j)) {
			return nil
		}
		if _, err := next(ctx, sub); err != nil {
			return err
		}
	}
}

// StreamPipelineStatus implements StreamService.StreamPipelineStatus: the
// run now, then after every change of it or of its jobs, until it ends.
func (ss *StreamServer) StreamPipelineStatus(req *jobv1.StreamPipelineStatusRequest, stream grpc.ServerStreamingServer[jobv1.StreamPipelineStatusResponse]) error {
	s, ctx := ss.s, stream.Context()
	if err := requireID("run_id", req.GetRunId()); err != nil {
		return err
	}
	sub := ss.subscribe(ctx, events.Filter{})
	for {
		r, err := s.store.GetRun(ctx, req.GetRunId())
		if err != nil {
			return storeError(err, "run "+req.GetRunId())
		}
		run, err := s.runProto(ctx, r)
		if err != nil {
			return storeError(err, "run")
		}
		if err := stream.Send(&jobv1.StreamPipelineStatusResponse{Run: run}); err != nil {
			return err
		}
		if jobstate.Terminal(status(&store.Job{Status: r.Status})) {
			return nil
		}
		for {
			e, err := next(ctx, sub)
			if err != nil {
				return err
			}
			if e.GetResourceId() == r.ID || e.GetAttributes()["run_id"] == r.ID {
				break
			}
		}
	}
}

// StreamAgentStatus implements StreamService.StreamAgentStatus: every agent
// (or the one asked for) now, then each agent again after it changes.
func (ss *StreamServer) StreamAgentStatus(req *jobv1.StreamAgentStatusRequest, stream grpc.ServerStreamingServer[jobv1.StreamAgentStatusResponse]) error {
	s, ctx := ss.s, stream.Context()
	// Job events change an agent's running count, hence its status.
	sub := ss.subscribe(ctx, events.Filter{})
	sendAgent := func(id string) error {
		a, err := s.store.GetAgent(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil // unregistered meanwhile
		}
		if err != nil {
			return storeError(err, "agent "+id)
		}
		return stream.Send(&jobv1.StreamAgentStatusResponse{Agent: s.agentProto(ctx, a, -1)})
	}
	if id := req.GetAgentId(); id != "" {
		if _, err := s.store.GetAgent(ctx, id); err != nil {
			return storeError(err, "agent "+id)
		}
		if err := sendAgent(id); err != nil {
			return err
		}
	} else {
		agents, _, err := s.store.ListAgents(ctx, store.AgentFilter{}, store.Page{Order: store.Order{Column: "name"}})
		if err != nil {
			return storeError(err, "agents")
		}
		for _, a := range agents {
			if err := sendAgent(a.ID); err != nil {
				return err
			}
		}
	}
	for {
		e, err := next(ctx, sub)
		if err != nil {
			return err
		}
		id := e.GetAttributes()["agent_id"]
		if e.GetResourceType() == events.Agent {
			id = e.GetResourceId()
		}
		if id == "" || (req.GetAgentId() != "" && id != req.GetAgentId()) {
			continue
		}
		if err := sendAgent(id); err != nil {
			return err
		}
	}
}
