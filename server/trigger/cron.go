// Package trigger starts pipeline runs from outside the API: a cron
// scheduler driven by an injectable clock, and the webhook HTTP endpoint
// that checks HMAC-SHA256 signatures of Git push payloads.
package trigger

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// CronEntry is one cron trigger of one pipeline.
type CronEntry struct {
	PipelineID string
	Pipeline   string
	Expr       string
	// Timezone is an IANA zone; empty means the scheduler's zone.
	Timezone string
}

func (e CronEntry) key() string { return e.PipelineID + "\x00" + e.Expr + "\x00" + e.Timezone }

// CronTarget lists the cron triggers and fires them.
type CronTarget interface {
	CronEntries(ctx context.Context) ([]CronEntry, error)
	FireCron(ctx context.Context, e CronEntry, at time.Time) error
}

// ParseCron parses a 5-field expression (minute hour day-of-month month
// day-of-week, with the usual @hourly-style shorthands) in a time zone
// (empty: none given). It is what validation uses.
func ParseCron(expr, timezone string) (cron.Schedule, *time.Location, error) {
	var loc *time.Location
	if timezone != "" {
		l, err := time.LoadLocation(timezone)
		if err != nil {
			return nil, nil, fmt.Errorf("unknown time zone %q", timezone)
		}
		loc = l
	}
	if strings.HasPrefix(strings.TrimSpace(expr), "CRON_TZ=") || strings.HasPrefix(strings.TrimSpace(expr), "TZ=") {
		return nil, nil, fmt.Errorf("put the time zone in the timezone field, not in %q", expr)
	}
	sched, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, nil, fmt.Errorf("bad cron expression %q: %v", expr, err)
	}
	return sched, loc, nil
}

// Scheduler fires cron triggers. Each tick it asks the target for the
// entries and fires every entry whose next time since it last looked has
// come. An entry seen for the first time starts from the tick's time, so a
// restart never fires a backlog of missed times, and a missed stretch fires
// once, not once per missed time.
type Scheduler struct {
	target CronTarget
	now    func() time.Time
	loc    *time.Location
	log    *slog.Logger

	mu   sync.Mutex
	last map[string]time.Time
	// parsed are the entries' schedules, parsed once per entry.
	parsed map[string]parsedCron
}

type parsedCron struct {
	sched cron.Schedule
	loc   *time.Location
	err   error
}

// NewScheduler returns a scheduler reading time from now in the zone loc
// (nil: the server's local zone).
func NewScheduler(target CronTarget, now func() time.Time, loc *time.Location, logger *slog.Logger) *Scheduler {
	if loc == nil {
		loc = time.Local
	}
	return &Scheduler{target: target, now: now, loc: loc, log: logger, last: map[string]time.Time{}, parsed: map[string]parsedCron{}}
}

// Run ticks every interval until ctx ends.
func (s *Scheduler) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	s.Tick(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Tick(ctx)
		}
	}
}

// Tick checks every entry once at the clock's time and returns how many
// fired.
func (s *Scheduler) Tick(ctx context.Context) int {
	now := s.now()
	entries, err := s.target.CronEntries(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("cron: list triggers", "err", err)
		}
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fired := 0
	seen := map[string]bool{}
	for _, e := range entries {
		k := e.key()
		seen[k] = true
		last, ok := s.last[k]
		if !ok {
			s.last[k] = now
			continue
		}
		pc, ok := s.parsed[k]
		if !ok {
			pc.sched, pc.loc, pc.err = ParseCron(e.Expr, e.Timezone)
			s.parsed[k] = pc
			if pc.err != nil {
				s.log.Warn("cron: bad trigger", "pipeline", e.Pipeline, "err", pc.err)
			}
		}
		if pc.err != nil {
			continue
		}
		sched, loc := pc.sched, pc.loc
		if loc == nil {
			loc = s.loc
		}
		next := sched.Next(last.In(loc))
		if next.After(now) {
			continue
		}
		s.last[k] = now
		if err := s.target.FireCron(ctx, e, next); err != nil {
			s.log.Warn("cron: trigger failed", "pipeline", e.Pipeline, "cron", e.Expr, "err", err)
			continue
		}
		fired++
	}
	for k := range s.last {
		if !seen[k] {
			delete(s.last, k)
		}
	}
	for k := range s.parsed {
		if !seen[k] {
			delete(s.parsed, k)
		}
	}
	return fired
}
