package pipeline

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/gitref"
	"github.com/go-arcade/arcade/core/jobimage"
	"github.com/go-arcade/arcade/core/jobstep"
	"github.com/go-arcade/arcade/core/labels"
)

// MaxAttempts bounds a retry policy's attempts.
const MaxAttempts = 100

// Validate checks a pipeline definition and returns its plan. The error is
// an *Error naming the field: a cycle (with its path), an unknown or later
// depends_on, a duplicate job name, a bad selector, a negative timeout, an
// unknown when, and the plainer mistakes. Cron expressions and time zones
// are checked by the caller, which owns the clock and the zone database.
//
// The definition is expanded first (includes from its include_files,
// templates, matrices; see Expand) and the plan is the expanded
// pipeline's, in Plan.Spec. Errors name the field as written. The
// expanded pipeline must be within DefaultLimits (Limits.Validate for
// others).
func Validate(p *jobv1.PipelineDetail) (*Plan, error) {
	return DefaultLimits.Validate(context.Background(), p)
}

// planExpanded plans an expanded pipeline, held to limits when l is not
// nil; errors name the field as written before expansion.
func planExpanded(ctx context.Context, l *Limits, exp *Expanded) (*Plan, error) {
	var err error
	if l != nil {
		err = l.Check(exp.Pipeline)
	}
	var plan *Plan
	if err == nil {
		plan, err = validate(ctx, exp.Pipeline)
	}
	if err != nil {
		var pe *Error
		if errors.As(err, &pe) && pe.Line == 0 {
			out := *pe
			out.Field = exp.SourceField(pe.Field)
			return nil, &out
		}
		var le *LimitError
		if errors.As(err, &le) {
			out := *le
			out.Field = exp.SourceField(le.Field)
			return nil, &out
		}
		return nil, err
	}
	plan.Spec, plan.Expanded = exp.Pipeline, exp
	return plan, nil
}

func validate(ctx context.Context, p *jobv1.PipelineDetail) (*Plan, error) {
	if p == nil {
		return nil, errorf("pipeline", "must be set")
	}
	if err := checkName("name", p.GetName()); err != nil {
		return nil, err
	}
	if err := checkEnv("env", p.GetEnv()); err != nil {
		return nil, err
	}
	if err := checkSecretRefs("secret_refs", p.GetSecretRefs()); err != nil {
		return nil, err
	}
	for i, t := range p.GetTriggers() {
		if err := checkTrigger(fmt.Sprintf("triggers[%d]", i), t); err != nil {
			return nil, err
		}
	}
	if err := checkSource(p.GetSource()); err != nil {
		return nil, err
	}
	if FromRepository(p) && len(p.GetStages()) == 0 {
		return &Plan{}, nil
	}
	if len(p.GetStages()) == 0 {
		return nil, errorf("stages", "must not be empty: a pipeline has at least one stage")
	}
	hasSecret := func(name string) bool {
		_, given := p.GetSecrets()[name]
		return given || slices.Contains(p.GetSecretNames(), name) || slices.Contains(p.GetSecretRefs(), name)
	}
	seenStage := map[string]int{}
	where := map[string]string{} // job name → field
	for si, st := range p.GetStages() {
		field := fmt.Sprintf("stages[%d]", si)
		if err := checkName(field+".name", st.GetName()); err != nil {
			return nil, err
		}
		if prev, dup := seenStage[st.GetName()]; dup {
			return nil, errorf(field+".name", "duplicate stage name %q (also stages[%d])", st.GetName(), prev)
		}
		seenStage[st.GetName()] = si
		if err := checkEnv(field+".env", st.GetEnv()); err != nil {
			return nil, err
		}
		if len(st.GetJobs()) == 0 {
			return nil, errorf(field+".jobs", "must not be empty: a stage has at least one job")
		}
		for ji, j := range st.GetJobs() {
			jf := jobField(si, ji)
			if err := checkName(jf+".name", j.GetName()); err != nil {
				return nil, err
			}
			if prev, dup := where[j.GetName()]; dup {
				return nil, errorf(jf+".name", "duplicate job name %q (also %s)", j.GetName(), prev)
			}
			where[j.GetName()] = jf
			if err := checkJob(jf, j); err != nil {
				return nil, err
			}
			jobHasSecret := func(name string) bool { return hasSecret(name) || slices.Contains(j.GetSecrets(), name) }
			if err := jobimage.Check(jf, strings.TrimSpace(j.GetImage()), j.GetContainer(), jobHasSecret); err != nil {
				var ie *jobimage.Error
				if errors.As(err, &ie) {
					return nil, errorf(ie.Field, "%s", ie.Reason)
				}
				return nil, errorf(jf+".image", "%v", err)
			}
			if err := checkSecretRefs(jf+".secrets", j.GetSecrets()); err != nil {
				return nil, err
			}
			if len(where)%cancelCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
			}
		}
	}
	plan, err := newPlan(ctx, p)
	if err != nil {
		return nil, err
	}
	if err := checkData(ctx, p, plan); err != nil {
		return nil, err
	}
	return plan, nil
}

func checkName(field, name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return errorf(field, "must not be empty")
	case name != strings.TrimSpace(name) || strings.ContainsAny(name, "\n\t\x00"):
		return errorf(field, "must not hold surrounding spaces or control characters: %q", name)
	case len(name) > 100:
		return errorf(field, "must be at most 100 characters")
	}
	return nil
}

func checkEnv(field string, env map[string]string) error {
	for k := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return errorf(fmt.Sprintf("%s[%q]", field, k), "not a valid variable name")
		}
	}
	return nil
}

func checkTrigger(field string, t *jobv1.Trigger) error {
	switch t.GetType() {
	case jobv1.TriggerType_TRIGGER_TYPE_MANUAL:
	case jobv1.TriggerType_TRIGGER_TYPE_CRON:
		if strings.TrimSpace(t.GetCron()) == "" {
			return errorf(field+".cron", "must be set for a cron trigger")
		}
	case jobv1.TriggerType_TRIGGER_TYPE_WEBHOOK:
		if t.GetSecret() == "" && !t.GetHasSecret() {
			return errorf(field+".secret", "must be set for a webhook trigger: payloads are checked with HMAC-SHA256")
		}
		if len(t.GetSecret()) > 1024 {
			return errorf(field+".secret", "must be at most 1024 bytes")
		}
		for name, list := range map[string][]string{"branches": t.GetBranches(), "tags": t.GetTags(), "paths": t.GetPaths()} {
			if len(list) > MaxFilters {
				return errorf(field+"."+name, "at most %d patterns", MaxFilters)
			}
			for k, pat := range list {
				if _, err := gitref.Compile(pat); err != nil {
					return errorf(fmt.Sprintf("%s.%s[%d]", field, name, k), "pattern does not compile: %v", err)
				}
			}
		}
		for k, e := range t.GetEvents() {
			if !slices.Contains(WebhookEvents, e) {
				return errorf(fmt.Sprintf("%s.events[%d]", field, k), "unknown event %q; want one of %s", e, strings.Join(WebhookEvents, ", "))
			}
		}
	case jobv1.TriggerType_TRIGGER_TYPE_PIPELINE:
		if strings.TrimSpace(t.GetPipeline()) == "" {
			return errorf(field+".pipeline", "must name the pipeline whose success starts this one")
		}
	default:
		return errorf(field+".type", "unknown trigger type %d", t.GetType())
	}
	return nil
}

func checkJob(field string, j *jobv1.PipelineJob) error {
	hasCmds, uses, hasSteps := len(j.GetCommands()) > 0, strings.TrimSpace(j.GetUses()) != "", len(j.GetSteps()) > 0
	approval := j.GetType() == jobv1.JobType_JOB_TYPE_APPROVAL
	switch {
	case approval && (hasCmds || uses || hasSteps):
		return errorf(field+".type", "an approval job runs nothing: it has no commands, uses or steps")
	case approval:
	case hasCmds && uses:
		return errorf(field, "has both commands and uses: a job runs commands, one plugin step, or steps")
	case hasSteps && (hasCmds || uses):
		return errorf(field+".steps", "set commands, uses or steps, not several: steps may mix commands and plugin calls")
	case !hasCmds && !uses && !hasSteps:
		return errorf(field+".commands", "must not be empty: a job runs commands, a plugin step (uses) or steps (or is of type: approval)")
	case !uses && len(j.GetWith()) > 0:
		return errorf(field+".with", "is only for a plugin step (uses)")
	}
	for i, c := range j.GetCommands() {
		if strings.TrimSpace(c) == "" {
			return errorf(fmt.Sprintf("%s.commands[%d]", field, i), "must not be empty")
		}
	}
	if uses {
		if _, _, err := jobstep.ParseUses(j.GetUses()); err != nil {
			return errorf(field+".uses", "%v", err)
		}
	}
	if err := jobstep.Validate(field+".steps", j.GetSteps()); err != nil {
		var se *jobstep.Error
		if errors.As(err, &se) {
			return errorf(se.Field, "%s", se.Reason)
		}
		return err
	}
	if err := checkEnv(field+".env", j.GetEnv()); err != nil {
		return err
	}
	if _, err := Selector(j); err != nil {
		var fe *labels.FieldError
		if errors.As(err, &fe) {
			return errorf(field+"."+fe.Field, "bad selector: %s", fe.Reason)
		}
		return errorf(field+".selector", "bad selector: %v", err)
	}
	if t := j.GetTimeout(); t != nil {
		if err := t.CheckValid(); err != nil {
			return errorf(field+".timeout", "%v", err)
		}
		if t.AsDuration() < 0 {
			return errorf(field+".timeout", "must not be negative, got %s", t.AsDuration())
		}
	}
	if r := j.GetRetry(); r != nil {
		if r.GetMaxAttempts() < 0 || r.GetMaxAttempts() > MaxAttempts {
			return errorf(field+".retry.max_attempts", "must be between 0 and %d, got %d", MaxAttempts, r.GetMaxAttempts())
		}
		if b := r.GetBackoff(); b != nil && (b.CheckValid() != nil || b.AsDuration() < 0) {
			return errorf(field+".retry.backoff", "must be a non-negative duration")
		}
	}
	if a := j.GetArtifacts(); a != nil {
		for i, p := range a.GetPaths() {
			pf := fmt.Sprintf("%s.artifacts.paths[%d]", field, i)
			switch {
			case strings.TrimSpace(p) == "":
				return errorf(pf, "must not be empty")
			case path.IsAbs(p):
				return errorf(pf, "must be relative to the job workspace, got %q", p)
			case p == ".." || strings.HasPrefix(p, "../") || strings.Contains(p, "/../"):
				return errorf(pf, "must stay inside the job workspace, got %q", p)
			}
			if _, err := path.Match(p, ""); err != nil {
				return errorf(pf, "bad pattern %q: %v", p, err)
			}
		}
		if e := a.GetExpireIn(); e != nil && e.AsDuration() < 0 {
			return errorf(field+".artifacts.expire_in", "must not be negative")
		}
	}
	switch j.GetWhen() {
	case jobv1.RunCondition_RUN_CONDITION_UNSPECIFIED, jobv1.RunCondition_RUN_CONDITION_ON_SUCCESS,
		jobv1.RunCondition_RUN_CONDITION_ON_FAILURE, jobv1.RunCondition_RUN_CONDITION_ALWAYS:
	default:
		return errorf(field+".when", "unknown when %d; want on_success, on_failure or always", j.GetWhen())
	}
	return nil
}

// Selector is a job's label selector: the structured form AND the text form.
func Selector(j *jobv1.PipelineJob) (labels.Selector, error) {
	sel, err := labels.FromProto(j.GetLabelSelector())
	if err != nil {
		var fe *labels.FieldError
		if errors.As(err, &fe) {
			return labels.Selector{}, &labels.FieldError{Field: "label_selector." + fe.Field, Reason: fe.Reason}
		}
		return labels.Selector{}, err
	}
	if text := j.GetSelector(); text != "" {
		parsed, err := labels.Parse(text)
		if err != nil {
			return labels.Selector{}, err
		}
		sel = labels.And(sel, parsed)
	}
	return sel, nil
}

// MaxSecretRefs bounds the stored secrets one list names.
const MaxSecretRefs = 100

// checkSecretRefs checks the names of stored secrets a pipeline or job
// references: variable names (the env the jobs see), each once. Whether
// they exist is the server's to say.
func checkSecretRefs(field string, refs []string) error {
	if len(refs) > MaxSecretRefs {
		return errorf(field, "at most %d secrets", MaxSecretRefs)
	}
	seen := map[string]bool{}
	for i, r := range refs {
		f := fmt.Sprintf("%s[%d]", field, i)
		if !secretName(r) {
			return errorf(f, "%q is not a secret name (letters, digits and _, not starting with a digit, at most 128)", r)
		}
		if seen[r] {
			return errorf(f, "%s is named twice", r)
		}
		seen[r] = true
	}
	return nil
}

func secretName(s string) bool {
	if s == "" || len(s) > 128 || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// MaxFilters bounds the patterns of one webhook filter.
const MaxFilters = 50

// WebhookEvents are the events a webhook trigger may filter on.
var WebhookEvents = []string{"push", "tag", "pull_request"}

// MaxDepth bounds a shallow checkout's depth.
const MaxDepth = 1 << 20

// FromRepository reports whether a pipeline reads its definition from its
// repository.
func FromRepository(p *jobv1.PipelineDetail) bool {
	return p.GetSource().GetDefinitionPath() != ""
}

// CheckSource checks a pipeline's source (its URL, branch and definition
// path) alone, as Validate does. Whether its credential exists is the
// server's to check.
func CheckSource(s *jobv1.Source) error { return checkSource(s) }

// checkSource checks a pipeline's source. Whether its credential exists is
// the server's to check.
func checkSource(s *jobv1.Source) error {
	if s == nil {
		return nil
	}
	if err := gitref.CheckURL(s.GetUrl()); err != nil {
		return errorf("source.url", "%v", err)
	}
	if b := s.GetDefaultBranch(); b != "" {
		if err := gitref.CheckRefName(b); err != nil {
			return errorf("source.default_branch", "%v", err)
		}
	}
	if c := s.GetCredential(); c != "" {
		if !secretName(c) {
			return errorf("source.credential", "%q is not a secret name (letters, digits and _, not starting with a digit, at most 128)", c)
		}
	}
	if d := s.GetDepth(); d < 0 || d > MaxDepth {
		return errorf("source.depth", "want 0 (full history) to %d, got %d", MaxDepth, d)
	}
	if dp := s.GetDefinitionPath(); dp != "" {
		clean := path.Clean(dp)
		if len(dp) > 1024 || path.IsAbs(dp) || clean == "." || clean == ".." || strings.HasPrefix(clean, "../") || strings.ContainsAny(dp, "\x00\n") {
			return errorf("source.definition_path", "want a relative path inside the repository, like .arcade.yaml; got %q", dp)
		}
	}
	return nil
}
