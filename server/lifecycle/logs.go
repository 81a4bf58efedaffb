package lifecycle

import (
	"context"
	"fmt"
	"time"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/server/store"
)

// MayLog checks that agentID may store the log lines of attempt of job j
// up to line last (0: it only asks where the log stands). Lines are taken
// from the attempt's lease holder alone, and, once its final report
// counted them, only up to that count: an agent writing into an attempt it
// does not hold, or into one taken from it, is refused with ErrForbidden;
// the holder sending lines past its count, with ErrInvalidArgument.
//
// j is read before the lines are stored, not in the same transaction: the
// holder of an attempt only ever changes away from the agent, whose own
// lines for its own attempt are genuine whenever they land.
func MayLog(j *store.Job, agentID string, attempt int32, last int64) error {
	if agentID == "" || j.AgentID != agentID || j.Attempt != attempt {
		return refuse(ErrForbidden, "job %s attempt %d is not leased to this agent: only its lease holder writes its log", j.ID, attempt)
	}
	st := status(j)
	switch {
	case st == jobstate.Running:
		return nil
	case !jobstate.Terminal(st) || j.LostAttempt == attempt && j.LostAgentID == agentID:
		return refuse(ErrForbidden, "job %s attempt %d was taken from this agent (%s): its log takes no more lines", j.ID, attempt, j.Message)
	case last > j.LogLines:
		return refuse(ErrInvalidArgument, "job %s attempt %d ended with %d log lines (its final report said so): line %d is past them",
			j.ID, attempt, j.LogLines, last)
	}
	return nil
}

// lostBecause says why the attempt of a late result was taken from its
// agent, from the job as it stood when the result came.
func lostBecause(j *store.Job) string {
	if j.Attempt != j.LostAttempt {
		return fmt.Sprintf("it ran out of its lease and attempt %d followed", j.Attempt)
	}
	return j.Message
}

// recordLate writes a result that came after its attempt was taken from
// its agent as the last line of that attempt's log (j is the job as it
// stood when the result came). The line is the server's, at level WARN.
func (l *Lifecycle) recordLate(ctx context.Context, j *store.Job, rep Report) {
	now := l.now()
	text := fmt.Sprintf("arcade: late result from this attempt's agent at %s: %s, exit code %d (%s); not applied: %s",
		now.Format(time.RFC3339), jobstate.Name(rep.Status), rep.ExitCode, rep.Message, lostBecause(j))
	l.log.Warn("late result of an attempt taken from its agent; recorded, not applied", "job", j.ID, "attempt", rep.Attempt,
		"agent", rep.AgentID, "status", jobstate.Name(rep.Status), "exit_code", rep.ExitCode, "job_now", j.Status, "job_attempt", j.Attempt)
	if j.LogArchivedAttempts >= rep.Attempt {
		return // the attempt's log is archived: the server log keeps it
	}
	last, err := l.store.LastLogLine(ctx, j.ID, rep.Attempt)
	if err == nil {
		_, err = l.store.AppendLogs(ctx, j.ID, rep.Attempt, []store.LogLine{{Line: last + 1, Time: now,
			Level: int16(agentv1.LogLevel_LOG_LEVEL_WARN), Stream: int16(agentv1.LogStream_LOG_STREAM_SYSTEM), Content: text}})
	}
	if err != nil {
		l.log.Warn("late result not recorded in the log", "job", j.ID, "attempt", rep.Attempt, "err", err)
	}
}
