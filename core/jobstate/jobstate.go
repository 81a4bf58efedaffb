// Package jobstate holds the life cycle of a job attempt: which status may
// follow which, and what happens to a job whose attempt ended badly.
package jobstate

import (
	"fmt"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
)

// Status is a job's status; it is the wire enum, so no conversion is needed.
type Status = agentv1.JobStatus

// The statuses, under shorter names.
const (
	Pending   = agentv1.JobStatus_JOB_STATUS_PENDING
	Running   = agentv1.JobStatus_JOB_STATUS_RUNNING
	Success   = agentv1.JobStatus_JOB_STATUS_SUCCESS
	Failed    = agentv1.JobStatus_JOB_STATUS_FAILED
	Cancelled = agentv1.JobStatus_JOB_STATUS_CANCELLED
	Timeout   = agentv1.JobStatus_JOB_STATUS_TIMEOUT
	Skipped   = agentv1.JobStatus_JOB_STATUS_SKIPPED
)

// transitions lists, for each status, the statuses that may follow it.
// Running → Pending is a lost lease (the agent vanished) putting the job back.
var transitions = map[Status][]Status{
	Pending: {Running, Cancelled, Skipped},
	Running: {Pending, Success, Failed, Cancelled, Timeout},
}

// Terminal reports whether s ends an attempt.
func Terminal(s Status) bool {
	switch s {
	case Success, Failed, Cancelled, Timeout, Skipped:
		return true
	}
	return false
}

// Valid reports whether s is a status a job can be in.
func Valid(s Status) bool {
	return s >= Pending && s <= Skipped
}

// TransitionError is returned for a status change the life cycle forbids.
type TransitionError struct {
	From, To Status
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("job cannot go from %s to %s", Name(e.From), Name(e.To))
}

// Check returns a *TransitionError unless a job in status from may move to to.
// Moving to the same status is allowed (reports are repeated after reconnects).
func Check(from, to Status) error {
	if from == to {
		return nil
	}
	for _, next := range transitions[from] {
		if next == to {
			return nil
		}
	}
	return &TransitionError{From: from, To: to}
}

// Retryable reports whether an attempt that ended in s may be retried
// automatically: failures and timeouts are, success and cancellation are not.
func Retryable(s Status) bool {
	return s == Failed || s == Timeout
}

// ShouldRetry reports whether an attempt numbered attempt (from 1) that ended
// in s is followed by another one, given the job's retries budget.
func ShouldRetry(s Status, attempt, retries int32) bool {
	return Retryable(s) && attempt <= retries
}

// CanRetryManually reports whether RetryJob may start a new attempt of a job
// in status s: any finished job that did not succeed.
func CanRetryManually(s Status) bool {
	return s == Failed || s == Cancelled || s == Timeout
}

// Reason says why an attempt ended other than in success: the typed outcome
// that decisions (retry policies) read, never the message shown to people.
// It is stored with the job; the zero value means none (the attempt
// succeeded, was skipped, or has not ended).
type Reason string

// The reasons an attempt ends badly.
const (
	// ReasonNone: succeeded, skipped, or not ended.
	ReasonNone Reason = ""
	// ReasonStepFailed: its agent reported it failed (a step or command).
	ReasonStepFailed Reason = "step_failed"
	// ReasonTimeout: it ran past its timeout (ended by its agent, or by the
	// server when the agent did not).
	ReasonTimeout Reason = "timeout"
	// ReasonCancelled: cancelled by request (the job, or its pipeline run).
	ReasonCancelled Reason = "cancelled"
	// ReasonAgentLost: its agent went away (its lease expired, or the agent
	// unregistered) while running it.
	ReasonAgentLost Reason = "agent_lost"
	// ReasonAgentRevoked: its agent was revoked while running it.
	ReasonAgentRevoked Reason = "agent_revoked"
	// ReasonUnrunnable: the server could not hand it out (a plugin its
	// steps use is no longer served).
	ReasonUnrunnable Reason = "unrunnable"
	// ReasonEngineLost: the container engine of its agent went away while
	// it ran in a container; retried like a lost agent.
	ReasonEngineLost Reason = "engine_lost"
	// ReasonOutOfMemory: its container hit its memory limit.
	ReasonOutOfMemory Reason = "out_of_memory"
	// ReasonImagePull: its image (or a service's) could not be pulled.
	ReasonImagePull Reason = "image_pull"
	// ReasonServiceNotReady: a service container did not become ready.
	ReasonServiceNotReady Reason = "service_not_ready"
	// ReasonContainerSetup: its container could not be set up.
	ReasonContainerSetup Reason = "container_setup"
	// ReasonWorkspace: its workspace could not be prepared.
	ReasonWorkspace Reason = "workspace"
	// The phases of a job on its agent besides steps (see the agent's
	// phases): each fails with its own reason.
	ReasonCheckout       Reason = "checkout"
	ReasonInputs         Reason = "inputs"
	ReasonCacheRestore   Reason = "cache_restore"
	ReasonOutputs        Reason = "outputs"
	ReasonCacheSave      Reason = "cache_save"
	ReasonArtifactUpload Reason = "artifact_upload"
	// ReasonRejected: an approval job someone rejected.
	ReasonRejected Reason = "rejected"
)

// Lost reports whether an attempt that ended for reason r did not fail on
// its own: its agent, or the agent's container engine, went away. Retry
// policies treat such attempts alike ("agent_lost").
func (r Reason) Lost() bool { return r == ReasonAgentLost || r == ReasonEngineLost }

// FromEndReason is the reason of an attempt its agent reported failed with
// the typed reason e; def when the agent gave none.
func FromEndReason(e agentv1.EndReason, def Reason) Reason {
	switch e {
	case agentv1.EndReason_END_REASON_STEP_FAILED:
		return ReasonStepFailed
	case agentv1.EndReason_END_REASON_ENGINE_LOST:
		return ReasonEngineLost
	case agentv1.EndReason_END_REASON_OUT_OF_MEMORY:
		return ReasonOutOfMemory
	case agentv1.EndReason_END_REASON_IMAGE_PULL:
		return ReasonImagePull
	case agentv1.EndReason_END_REASON_SERVICE_NOT_READY:
		return ReasonServiceNotReady
	case agentv1.EndReason_END_REASON_CONTAINER_SETUP:
		return ReasonContainerSetup
	case agentv1.EndReason_END_REASON_WORKSPACE:
		return ReasonWorkspace
	case agentv1.EndReason_END_REASON_CHECKOUT:
		return ReasonCheckout
	case agentv1.EndReason_END_REASON_INPUTS:
		return ReasonInputs
	case agentv1.EndReason_END_REASON_CACHE_RESTORE:
		return ReasonCacheRestore
	case agentv1.EndReason_END_REASON_OUTPUTS:
		return ReasonOutputs
	case agentv1.EndReason_END_REASON_CACHE_SAVE:
		return ReasonCacheSave
	case agentv1.EndReason_END_REASON_ARTIFACT_UPLOAD:
		return ReasonArtifactUpload
	}
	return def
}

// Name is the short lower-case name of a status ("running"), as stored and
// shown to people.
func Name(s Status) string {
	switch s {
	case Pending:
		return "pending"
	case Running:
		return "running"
	case Success:
		return "success"
	case Failed:
		return "failed"
	case Cancelled:
		return "cancelled"
	case Timeout:
		return "timeout"
	case Skipped:
		return "skipped"
	}
	return "unspecified"
}

// Parse is the inverse of Name; it also accepts the wire names
// ("JOB_STATUS_RUNNING").
func Parse(name string) (Status, error) {
	for s := Pending; s <= Skipped; s++ {
		if name == Name(s) || name == s.String() {
			return s, nil
		}
	}
	return 0, fmt.Errorf("unknown job status %q", name)
}
