package store

import (
	"maps"
	"slices"
	"time"

	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/core/logpack"

	"github.com/uptrace/bun"
)

// Agent is a registered agent.
type Agent struct {
	bun.BaseModel `bun:"table:agents"`

	ID       string `bun:"id,pk"`
	Name     string `bun:"name,notnull,unique"`
	Hostname string `bun:"hostname,notnull"`
	OS       string `bun:"os,notnull"`
	Arch     string `bun:"arch,notnull"`
	Version  string `bun:"version,notnull"`
	// Labels are what the dispatcher matches: the agent's own labels with
	// AdminLabels over them.
	Labels          map[string]string `bun:"labels,notnull"`
	MaxJobs         int32             `bun:"max_jobs,notnull"`
	TokenHash       string            `bun:"token_hash,notnull"`
	Online          bool              `bun:"online,notnull"`
	RegisteredAt    time.Time         `bun:"registered_at,notnull"`
	LastHeartbeatAt time.Time         `bun:"last_heartbeat_at,nullzero"`
	Metrics         []byte            `bun:"metrics"`
	Revoked         bool              `bun:"revoked,notnull"`
	// Plugins are the plugins the agent runs as job steps: "*" or none
	// means any, "-" none.
	Plugins []string `bun:"plugins"`
	// TrustMarked: an admin marked the agent trusted. Trusted is what the
	// dispatcher reads: marked, or carrying a trusted label (kept up to
	// date by every write of the agent's labels and of the trusted labels).
	TrustMarked bool `bun:"trust_marked,notnull"`
	Trusted     bool `bun:"trusted,notnull"`
	// AdminLabels are the labels an admin set (UpdateLabels with an API
	// token). They outlive the agent's restarts, the agent cannot change
	// them, and only they can make it trusted (trusted labels): any holder of
	// the registration token can claim labels of its own.
	AdminLabels map[string]string `bun:"admin_labels"`
}

// Job is one job and the state of its current attempt.
type Job struct {
	bun.BaseModel `bun:"table:jobs"`

	ID        string            `bun:"id,pk"`
	Name      string            `bun:"name,notnull"`
	Status    string            `bun:"status,notnull"`
	Commands  []string          `bun:"commands,notnull"`
	Env       map[string]string `bun:"env,notnull"`
	TimeoutMS int64             `bun:"timeout_ms,notnull"`
	Image     string            `bun:"image,notnull"`
	// Artifacts is the artifact config as protojson.
	Artifacts []byte `bun:"artifacts"`
	Retries   int32  `bun:"retries,notnull"`
	// Selector is the label selector in its compact text form.
	Selector       string            `bun:"selector,notnull"`
	Labels         map[string]string `bun:"labels,notnull"`
	CreatedAt      time.Time         `bun:"created_at,notnull"`
	UpdatedAt      time.Time         `bun:"updated_at,notnull"`
	StartedAt      time.Time         `bun:"started_at,nullzero"`
	FinishedAt     time.Time         `bun:"finished_at,nullzero"`
	LeaseExpiresAt time.Time         `bun:"lease_expires_at,nullzero"`
	// AcceptedAt is when the agent reported the attempt RUNNING; zero while
	// the assignment is on its way (or was lost).
	AcceptedAt      time.Time `bun:"accepted_at,nullzero"`
	AgentID         string    `bun:"agent_id,notnull"`
	AgentName       string    `bun:"agent_name,notnull"`
	ExitCode        int32     `bun:"exit_code,notnull"`
	Attempt         int32     `bun:"attempt,notnull"`
	Message         string    `bun:"message,notnull"`
	CancelRequested bool      `bun:"cancel_requested,notnull"`
	// Secrets are sealed (server/secrets); SecretNames say which.
	Secrets     []byte   `bun:"secrets"`
	SecretNames []string `bun:"secret_names"`
	PipelineID  string   `bun:"pipeline_id,notnull"`
	RunID       string   `bun:"run_id,notnull"`
	Stage       string   `bun:"stage,notnull"`
	// LogArchivedAttempts: the logs of attempts 1..N are archived through
	// the storage plugin (server/logarchive) and no longer in the database.
	LogArchivedAttempts int32 `bun:"log_archived_attempts,notnull"`
	// Steps are the job's steps as a JSON array of protojson agentv1.Step;
	// nil for a job of commands only.
	Steps []byte `bun:"steps"`
	// Plugins name the plugins the steps use, for routing.
	Plugins []string `bun:"plugins"`
	// Container is how the job runs in its image (agentv1.ContainerOptions
	// as protojson); nil for the defaults.
	Container []byte `bun:"container"`
	// EndReason says why the attempt ended other than in success; it is set
	// with its final status and cleared when the next attempt starts.
	EndReason jobstate.Reason `bun:"end_reason,notnull"`
	// LogLines is how many log lines the agent said the attempt wrote, in
	// its final report: after it, no line past that number is taken.
	LogLines int64 `bun:"log_lines,notnull,default:0"`
	// LostAttempt and LostAgentID name the last attempt taken away from
	// its agent (its lease expired, the agent was revoked or
	// unregistered), so that a result the agent sends late is recorded in
	// that attempt's log but changes nothing.
	LostAttempt int32  `bun:"lost_attempt,notnull,default:0"`
	LostAgentID string `bun:"lost_agent_id,notnull,default:''"`
	// SecretRefs name stored secrets (table secrets) the job gets as env,
	// resolved when it is handed out.
	SecretRefs []string `bun:"secret_refs"`
	// TrustedAgents: the job may run on trusted agents; TrustReason says
	// why, or why not.
	TrustedAgents bool   `bun:"trusted_agents,notnull"`
	TrustReason   string `bun:"trust_reason,notnull"`
	// Checkout is the source the agent checks out first (protojson
	// agentv1.Checkout naming its credential's secret, never the value);
	// nil: none.
	Checkout []byte `bun:"checkout"`

	// Pipeline data (see core/pipeline's data.go).
	//
	// Outputs are what the job set (final success); SecretOutputs name those
	// holding a secret (masked wherever shown). OutputNames are the outputs
	// it declares; NeedsArtifacts the upstream jobs whose artifacts it
	// receives; Cache its cache (agentv1.CacheConfig as protojson);
	// ExprContext the values its agent-side expressions read besides env
	// ("matrix.go", "arcade.branch"); Matrix the matrix it is a combination
	// of (jobv1.MatrixInstance as protojson).
	Outputs        map[string]string `bun:"outputs"`
	SecretOutputs  []string          `bun:"secret_outputs"`
	OutputNames    []string          `bun:"output_names"`
	NeedsArtifacts []string          `bun:"needs_artifacts"`
	Cache          []byte            `bun:"cache"`
	ExprContext    map[string]string `bun:"expr_context"`
	// SecretEnv name the env variables filled from upstream outputs that
	// hold a secret: they are handed to the agent as secrets (masked).
	SecretEnv []string `bun:"secret_env"`
	Matrix    []byte   `bun:"matrix"`
	// Type is "" or "approval". Hold keeps a pending job from agents:
	// HoldApproval (an approval job never goes to one) or HoldConcurrency
	// (another job of ConcurrencyGroup runs).
	Type             string `bun:"job_type,notnull,default:''"`
	Hold             string `bun:"hold,notnull,default:''"`
	ConcurrencyGroup string `bun:"concurrency_group,notnull,default:''"`
	// An approval job's decision (approved, rejected, timed_out), who
	// decided (a token's name), when, and when it times out.
	ApprovalDecision  string    `bun:"approval_decision,notnull,default:''"`
	ApprovalBy        string    `bun:"approval_by,notnull,default:''"`
	ApprovalComment   string    `bun:"approval_comment,notnull,default:''"`
	ApprovalAt        time.Time `bun:"approval_at,nullzero"`
	ApprovalExpiresAt time.Time `bun:"approval_expires_at,nullzero"`
}

// The holds of a pending job.
const (
	HoldNone        = ""
	HoldApproval    = "approval"
	HoldConcurrency = "concurrency"
)

// LogLine is one log line of a job attempt.
type LogLine = logpack.Line

// logChunk is a run of consecutive log lines of a job attempt, stored as one
// row: a batch from an agent becomes one insert, however many lines it has.
type logChunk struct {
	bun.BaseModel `bun:"table:job_log_chunks"`

	JobID     string `bun:"job_id,pk"`
	Attempt   int32  `bun:"attempt,pk"`
	FirstLine int64  `bun:"first_line,pk"`
	LastLine  int64  `bun:"last_line,notnull"`
	Lines     int32  `bun:"lines,notnull"`
	Data      []byte `bun:"data,notnull"`
}

// Artifact is one file a job attempt kept.
type Artifact struct {
	bun.BaseModel `bun:"table:job_artifacts"`

	JobID     string    `bun:"job_id,pk"`
	Attempt   int32     `bun:"attempt,pk"`
	Path      string    `bun:"path,pk"`
	SizeBytes int64     `bun:"size_bytes,notnull"`
	SHA256    string    `bun:"sha256,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
	ExpiresAt time.Time `bun:"expires_at,nullzero"`
	// Stored is true once the server holds the bytes, under StorageKey in
	// Parts objects of the storage plugin (see server/artifacts).
	Stored     bool   `bun:"stored,notnull"`
	StorageKey string `bun:"storage_key,notnull"`
	Parts      int32  `bun:"parts,notnull"`
	// ClaimedAt is set by the sweep that is removing the expired artifact.
	ClaimedAt time.Time `bun:"claimed_at,nullzero"`
}

// jobData are the tables whose rows belong to a job (by job_id) and go when
// it is deleted.
var jobData = []any{(*logChunk)(nil), (*Artifact)(nil)}

// clone returns a copy of j that shares no map or slice with it.
func (j *Job) clone() *Job {
	c := *j
	c.Commands = slices.Clone(j.Commands)
	c.Env = maps.Clone(j.Env)
	c.Labels = maps.Clone(j.Labels)
	c.Artifacts = slices.Clone(j.Artifacts)
	c.Secrets = slices.Clone(j.Secrets)
	c.SecretNames = slices.Clone(j.SecretNames)
	c.Steps = slices.Clone(j.Steps)
	c.Plugins = slices.Clone(j.Plugins)
	c.SecretRefs = slices.Clone(j.SecretRefs)
	c.Checkout = slices.Clone(j.Checkout)
	c.Outputs = maps.Clone(j.Outputs)
	c.SecretOutputs = slices.Clone(j.SecretOutputs)
	c.OutputNames = slices.Clone(j.OutputNames)
	c.NeedsArtifacts = slices.Clone(j.NeedsArtifacts)
	c.Cache = slices.Clone(j.Cache)
	c.ExprContext = maps.Clone(j.ExprContext)
	c.SecretEnv = slices.Clone(j.SecretEnv)
	c.Matrix = slices.Clone(j.Matrix)
	return &c
}
