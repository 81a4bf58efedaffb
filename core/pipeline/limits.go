package pipeline

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// Limits bound what one pipeline may hold; they apply to the plan as it
// will run, after matrices, includes and templates are expanded. A zero
// field takes its default.
type Limits struct {
	// Jobs bounds the jobs of all stages together.
	Jobs int
	// Stages bounds the stages.
	Stages int
	// Edges bounds the depends_on entries of all jobs together (the stage
	// barrier of a job without depends_on counts for nothing).
	Edges int
	// YAMLBytes bounds a pipeline's size: its file, and the definition as
	// parsed (YAML aliases can make it larger than its file).
	YAMLBytes int
}

// DefaultLimits are the limits of a server that sets none.
var DefaultLimits = Limits{Jobs: 10_000, Stages: 1_000, Edges: 50_000, YAMLBytes: 4 << 20}

// WithDefaults fills the zero fields from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	if l.Jobs <= 0 {
		l.Jobs = DefaultLimits.Jobs
	}
	if l.Stages <= 0 {
		l.Stages = DefaultLimits.Stages
	}
	if l.Edges <= 0 {
		l.Edges = DefaultLimits.Edges
	}
	if l.YAMLBytes <= 0 {
		l.YAMLBytes = DefaultLimits.YAMLBytes
	}
	return l
}

// LimitError is a pipeline over one of its Limits. Field is where it shows
// ("yaml", "stages", …) and Limit the limit's setting (pipeline_limits.jobs…).
type LimitError struct {
	Field string
	Limit string
	Got   int
	Max   int
	What  string
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s: %d %s, more than the limit of %d (%s)", e.Field, e.Got, e.What, e.Max, e.Limit)
}

// ParseYAML is ParseYAML refusing a file larger than l.YAMLBytes before
// reading it.
func (l Limits) ParseYAML(data []byte) (*jobv1.PipelineDetail, error) {
	l = l.WithDefaults()
	if len(data) > l.YAMLBytes {
		return nil, &LimitError{Field: "yaml", Limit: "pipeline_limits.yaml_bytes", Got: len(data), Max: l.YAMLBytes, What: "bytes"}
	}
	return ParseYAML(data)
}

// Check refuses a pipeline over the limits; it counts, nothing more, so it
// runs before any other check.
func (l Limits) Check(p *jobv1.PipelineDetail) error {
	l = l.WithDefaults()
	stages := p.GetStages()
	if len(stages) > l.Stages {
		return &LimitError{Field: "stages", Limit: "pipeline_limits.stages", Got: len(stages), Max: l.Stages, What: "stages"}
	}
	jobs, edges := 0, 0
	for _, st := range stages {
		jobs += len(st.GetJobs())
		for _, j := range st.GetJobs() {
			edges += len(j.GetDependsOn())
		}
	}
	if jobs > l.Jobs {
		return &LimitError{Field: "stages", Limit: "pipeline_limits.jobs", Got: jobs, Max: l.Jobs, What: "jobs"}
	}
	if edges > l.Edges {
		return &LimitError{Field: "stages", Limit: "pipeline_limits.edges", Got: edges, Max: l.Edges, What: "depends_on entries"}
	}
	if n := proto.Size(p); n > l.YAMLBytes {
		return &LimitError{Field: "pipeline", Limit: "pipeline_limits.yaml_bytes", Got: n, Max: l.YAMLBytes, What: "bytes as a message"}
	}
	return nil
}

// Validate is Validate within the limits, stopping when ctx ends (the
// error is then ctx's). The limits apply to the pipeline as it will run:
// it is expanded first (includes, templates, matrices; a matrix making
// more jobs than l.Jobs is refused while it expands) and the expanded
// pipeline is counted. Errors name the field as written.
func (l Limits) Validate(ctx context.Context, p *jobv1.PipelineDetail) (*Plan, error) {
	return l.ValidateFiles(ctx, p, nil)
}

// ValidateFiles is Validate reading includes from files (nil: the files p
// carries in include_files).
func (l Limits) ValidateFiles(ctx context.Context, p *jobv1.PipelineDetail, files Files) (*Plan, error) {
	l = l.WithDefaults()
	// Counting what is written first refuses the plainly oversized before
	// any expansion work.
	if err := l.Check(p); err != nil {
		return nil, err
	}
	exp, err := Expand(p, files, l.Jobs)
	if err != nil {
		return nil, err
	}
	if exp.Pipeline == p {
		return planExpanded(ctx, nil, exp) // nothing expanded: counted above
	}
	return planExpanded(ctx, &l, exp)
}

// replanMaxJobs bounds the jobs a stored definition may expand to when it
// is planned again: it was held to the limits in force when it was stored.
const replanMaxJobs = 1 << 20

// Replan plans a definition stored earlier (a run's snapshot), under no
// limits: it was held to the limits in force when it was stored, which may
// have been raised or lowered since. It stops when ctx ends.
//
// A snapshot with no stages and nothing to expand (a run that failed before
// it had a definition: a broken file, a missing include) plans to no job.
func Replan(ctx context.Context, p *jobv1.PipelineDetail) (*Plan, error) {
	if len(p.GetStages()) == 0 && IsExpanded(p) {
		return &Plan{Spec: p, Expanded: &Expanded{Pipeline: p}}, nil
	}
	exp, err := Expand(p, nil, replanMaxJobs)
	if err != nil {
		return nil, err
	}
	return planExpanded(ctx, nil, exp)
}
