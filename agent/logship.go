package agent

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/go-arcade/arcade/agent/executor"
	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	"github.com/go-arcade/arcade/core/logpack"
)

const (
	// shipBatch is the most lines one ReportJobLog carries.
	shipBatch = 2000
	// shipEvery is how long a line may wait before it is sent.
	shipEvery = 100 * time.Millisecond
)

// shipper numbers a job's log lines and sends them in batches. A batch is
// resent until the server acknowledges it; the server stores lines by
// number, so a resent batch is never stored twice.
type shipper struct {
	a       *Agent
	agentID string
	jobID   string
	attempt int32
	log     *slog.Logger

	mask *executor.Masker // secrets → ***; nil without secrets; guarded by mu

	mu      sync.Mutex
	pending []logpack.Line
	next    int64
	full    chan struct{}
	closed  chan struct{}
	done    chan struct{}
}

func newShipper(a *Agent, agentID, jobID string, attempt int32, log *slog.Logger, secrets []string) *shipper {
	s := &shipper{a: a, agentID: agentID, jobID: jobID, attempt: attempt, log: log, next: 1,
		full: make(chan struct{}, 1), closed: make(chan struct{}), done: make(chan struct{})}
	minLen := a.cfg.MaskMinLength
	if minLen <= 0 {
		minLen = executor.DefaultMaskMinLength
	}
	s.mask = executor.NewMasker(secrets, minLen)
	go s.loop()
	return s
}

func (s *shipper) add(l executor.Line) { s.addLevel(l, agentv1.LogLevel_LOG_LEVEL_INFO) }

// addLevel queues a line at a level (plugin steps log at several); secrets
// are masked here, whoever wrote the line.
func (s *shipper) addLevel(l executor.Line, level agentv1.LogLevel) {
	line := logpack.Line{Time: l.Time, Content: l.Text, Level: int16(level)}
	switch l.Stream {
	case executor.Stdout:
		line.Stream = int16(agentv1.LogStream_LOG_STREAM_STDOUT)
	case executor.Stderr:
		line.Stream = int16(agentv1.LogStream_LOG_STREAM_STDERR)
	default:
		line.Stream = int16(agentv1.LogStream_LOG_STREAM_SYSTEM)
	}
	s.mu.Lock()
	if s.mask != nil {
		line.Content = s.mask.Mask(l.Stream, l.Text, l.Continued)
		if line.Content == "" && l.Continued {
			s.mu.Unlock()
			return // all held back: it ships with the rest of its line
		}
	}
	line.Line = s.next
	s.next++
	s.pending = append(s.pending, line)
	n := len(s.pending)
	s.mu.Unlock()
	if n >= shipBatch {
		select {
		case s.full <- struct{}{}:
		default:
		}
	}
}

// lines returns how many lines were numbered so far.
func (s *shipper) lines() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next - 1
}

// close sends what is left and waits for it to be acknowledged.
func (s *shipper) close() {
	if s.mask != nil {
		s.mu.Lock()
		held := s.mask.Flush()
		s.mu.Unlock()
		for _, st := range []executor.Stream{executor.Stdout, executor.Stderr} {
			if text, ok := held[st]; ok {
				s.add(executor.Line{Stream: st, Text: text, Time: time.Now()})
			}
		}
	}
	close(s.closed)
	<-s.done
}

func (s *shipper) loop() {
	defer close(s.done)
	t := time.NewTicker(shipEvery)
	defer t.Stop()
	for {
		final := false
		select {
		case <-t.C:
		case <-s.full:
		case <-s.closed:
			final = true
		}
		for s.flush() {
		}
		if final {
			return
		}
	}
}

// flush sends one batch; it reports whether more lines wait.
func (s *shipper) flush() bool {
	s.mu.Lock()
	n := min(len(s.pending), shipBatch)
	batch := s.pending[:n:n]
	s.mu.Unlock()
	if n == 0 {
		return false
	}
	first, last := batch[0].Line, batch[n-1].Line
	req := &agentv1.ReportJobLogRequest{AgentId: s.agentID, JobId: s.jobID, Attempt: s.attempt,
		Packed: logpack.Encode(batch), FirstLine: first}
	done := n // lines of the batch the server has, or that are lost for good
	// While the server cannot take the lines (unreachable, its database
	// failing) they are sent again for the agent's patience; a refusal
	// (the attempt is no longer this agent's) ends at once.
	r := s.a.retrier()
	for {
		stored, err := s.a.sendLog(context.Background(), req)
		if err == nil {
			switch {
			case stored >= last:
			case stored >= first-1:
				done = int(stored - first + 1) // resend the rest
			default:
				s.log.Error("server lost earlier log lines; they cannot be sent again", "from", stored+1, "to", first-1)
			}
			break
		}
		if refusal(err) && grpcstatus.Code(err) != codes.Unauthenticated {
			s.log.Error("server refused log lines; dropping them", "lines", n, "err", err)
			break
		}
		if !r.again(context.Background()) {
			s.log.Error("giving up shipping log lines", "lines", n, "err", err)
			break
		}
		s.log.Warn("ship log lines; retrying", "err", err)
	}
	s.mu.Lock()
	s.pending = s.pending[done:]
	more := len(s.pending) > 0
	s.mu.Unlock()
	return more
}
