package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobimage"
	"github.com/go-arcade/arcade/core/jobstep"
)

// The file format (.arcade.yaml). Unknown keys are errors, so a typo never
// silently drops a setting.
type fileSpec struct {
	Name     string            `yaml:"name"`
	Env      map[string]string `yaml:"env"`
	Secrets  []string          `yaml:"secrets"`
	Source   *sourceSpec       `yaml:"source"`
	Triggers []triggerSpec     `yaml:"triggers"`
	Stages   []stageSpec       `yaml:"stages"`
}

// sourceSpec is the repository a pipeline builds.
type sourceSpec struct {
	URL        string `yaml:"url"`
	Branch     string `yaml:"branch"`
	Credential string `yaml:"credential"`
	Definition string `yaml:"definition"`
	Depth      int32  `yaml:"depth"`
	Submodules bool   `yaml:"submodules"`
	// ForkDefinition: "base" (the default: pull requests from forks run
	// the base branch's definition) or "approval" (the pull request's own,
	// once approved).
	ForkDefinition string `yaml:"fork_definition"`
	// StatusPlugin is the notify plugin reporting commit statuses.
	StatusPlugin string `yaml:"status_plugin"`
}

type triggerSpec struct {
	Type     string   `yaml:"type"`
	Cron     string   `yaml:"cron"`
	Timezone string   `yaml:"timezone"`
	Branches []string `yaml:"branches"`
	Secret   string   `yaml:"secret"`
	Pipeline string   `yaml:"pipeline"`
	Tags     []string `yaml:"tags"`
	Events   []string `yaml:"events"`
	Paths    []string `yaml:"paths"`
}

type stageSpec struct {
	Name string            `yaml:"name"`
	Env  map[string]string `yaml:"env"`
	Jobs []jobSpec         `yaml:"jobs"`
}

type jobSpec struct {
	Name          string            `yaml:"name"`
	Commands      []string          `yaml:"commands"`
	Uses          string            `yaml:"uses"`
	With          map[string]string `yaml:"with"`
	Env           map[string]string `yaml:"env"`
	Selector      string            `yaml:"selector"`
	LabelSelector *selectorSpec     `yaml:"label_selector"`
	Timeout       string            `yaml:"timeout"`
	Retry         *retrySpec        `yaml:"retry"`
	Artifacts     *artifactSpec     `yaml:"artifacts"`
	DependsOn     []string          `yaml:"depends_on"`
	When          string            `yaml:"when"`
	Image         string            `yaml:"image"`
	Steps         []jobstep.YAML    `yaml:"steps"`
	// pull, registry_auth, cpus, memory, network, services
	Container jobimage.YAML `yaml:",inline"`
	Secrets   []string      `yaml:"secrets"`
	// Checkout: false skips the checkout of the pipeline's source.
	Checkout *bool `yaml:"checkout"`
}

type selectorSpec struct {
	MatchLabels      map[string]string `yaml:"match_labels"`
	MatchExpressions []struct {
		Key      string   `yaml:"key"`
		Operator string   `yaml:"operator"`
		Values   []string `yaml:"values"`
	} `yaml:"match_expressions"`
}

type retrySpec struct {
	MaxAttempts int32    `yaml:"max_attempts"`
	On          []string `yaml:"on"`
	Backoff     string   `yaml:"backoff"`
}

type artifactSpec struct {
	Paths    []string `yaml:"paths"`
	ExpireIn string   `yaml:"expire_in"`
}

// ParseYAML reads a pipeline file into the API message. It checks the shape
// (types, known keys, durations, enum words); Validate checks the meaning.
func ParseYAML(data []byte) (*jobv1.PipelineDetail, error) {
	var f fileSpec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errorf("yaml", "the file is empty")
		}
		return nil, errorf("yaml", "%v", err)
	}
	p := &jobv1.PipelineDetail{Name: f.Name, Env: f.Env, SecretRefs: f.Secrets}
	for i, t := range f.Triggers {
		field := fmt.Sprintf("triggers[%d]", i)
		typ, err := ParseTriggerType(t.Type)
		if err != nil {
			return nil, errorf(field+".type", "%v", err)
		}
		p.Triggers = append(p.Triggers, &jobv1.Trigger{Type: typ, Cron: t.Cron, Timezone: t.Timezone,
			Branches: t.Branches, Secret: t.Secret, Pipeline: t.Pipeline, Tags: t.Tags, Events: t.Events, Paths: t.Paths})
	}
	if s := f.Source; s != nil {
		src := &jobv1.Source{Url: s.URL, DefaultBranch: s.Branch, Credential: s.Credential,
			DefinitionPath: s.Definition, Depth: s.Depth, Submodules: s.Submodules, StatusPlugin: s.StatusPlugin}
		switch strings.ToLower(strings.TrimSpace(s.ForkDefinition)) {
		case "", "base":
		case "approval":
			src.ForkDefinitionNeedsApproval = true
		default:
			return nil, errorf("source.fork_definition", "unknown %q; want base or approval", s.ForkDefinition)
		}
		p.Source = src
	}
	for si, s := range f.Stages {
		st := &jobv1.Stage{Name: s.Name, Env: s.Env}
		for ji, j := range s.Jobs {
			pj, err := parseJob(jobField(si, ji), j)
			if err != nil {
				return nil, err
			}
			st.Jobs = append(st.Jobs, pj)
		}
		p.Stages = append(p.Stages, st)
	}
	return p, nil
}

func parseJob(field string, j jobSpec) (*jobv1.PipelineJob, error) {
	pj := &jobv1.PipelineJob{Name: j.Name, Commands: j.Commands, Uses: j.Uses, With: j.With, Env: j.Env,
		Selector: j.Selector, DependsOn: j.DependsOn, Image: j.Image, Secrets: j.Secrets,
		SkipCheckout: j.Checkout != nil && !*j.Checkout}
	var err error
	if pj.Steps, err = jobstep.FromYAML(field+".steps", j.Steps); err != nil {
		var se *jobstep.Error
		if errors.As(err, &se) {
			return nil, errorf(se.Field, "%s", se.Reason)
		}
		return nil, err
	}
	if pj.Container, err = j.Container.Proto(field); err != nil {
		var ie *jobimage.Error
		if errors.As(err, &ie) {
			return nil, errorf(ie.Field, "%s", ie.Reason)
		}
		return nil, err
	}
	if pj.Timeout, err = parseDuration(field+".timeout", j.Timeout); err != nil {
		return nil, err
	}
	if pj.When, err = ParseWhen(j.When); err != nil {
		return nil, errorf(field+".when", "%v", err)
	}
	if s := j.LabelSelector; s != nil {
		sel := &agentv1.LabelSelector{MatchLabels: s.MatchLabels}
		for k, e := range s.MatchExpressions {
			op, err := parseOperator(e.Operator)
			if err != nil {
				return nil, errorf(fmt.Sprintf("%s.label_selector.match_expressions[%d].operator", field, k), "%v", err)
			}
			sel.MatchExpressions = append(sel.MatchExpressions, &agentv1.LabelSelectorRequirement{Key: e.Key, Operator: op, Values: e.Values})
		}
		pj.LabelSelector = sel
	}
	if r := j.Retry; r != nil {
		rp := &jobv1.RetryPolicy{MaxAttempts: r.MaxAttempts}
		for k, on := range r.On {
			switch strings.ToLower(strings.TrimSpace(on)) {
			case "failure", "failed":
				rp.OnFailure = true
			case "timeout":
				rp.OnTimeout = true
			case "agent_lost", "lost":
				rp.OnAgentLost = true
			default:
				return nil, errorf(fmt.Sprintf("%s.retry.on[%d]", field, k), "unknown outcome %q; want failure, timeout or agent_lost", on)
			}
		}
		if rp.Backoff, err = parseDuration(field+".retry.backoff", r.Backoff); err != nil {
			return nil, err
		}
		pj.Retry = rp
	}
	if a := j.Artifacts; a != nil {
		ac := &agentv1.ArtifactConfig{Paths: a.Paths}
		if ac.ExpireIn, err = parseDuration(field+".artifacts.expire_in", a.ExpireIn); err != nil {
			return nil, err
		}
		pj.Artifacts = ac
	}
	return pj, nil
}

func parseDuration(field, s string) (*durationpb.Duration, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return nil, errorf(field, "not a duration (like 90s or 10m): %q", s)
	}
	return durationpb.New(d), nil
}

// ParseWhen reads a run condition: on_success (the default), on_failure or
// always.
func ParseWhen(s string) (jobv1.RunCondition, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "on_success":
		return jobv1.RunCondition_RUN_CONDITION_ON_SUCCESS, nil
	case "on_failure":
		return jobv1.RunCondition_RUN_CONDITION_ON_FAILURE, nil
	case "always":
		return jobv1.RunCondition_RUN_CONDITION_ALWAYS, nil
	}
	return 0, fmt.Errorf("unknown when %q; want on_success, on_failure or always", s)
}

// WhenName is the file form of a run condition.
func WhenName(w jobv1.RunCondition) string {
	switch w {
	case jobv1.RunCondition_RUN_CONDITION_ON_FAILURE:
		return "on_failure"
	case jobv1.RunCondition_RUN_CONDITION_ALWAYS:
		return "always"
	}
	return "on_success"
}

// ParseTriggerType reads manual, cron, webhook or pipeline.
func ParseTriggerType(s string) (jobv1.TriggerType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "manual", "api":
		return jobv1.TriggerType_TRIGGER_TYPE_MANUAL, nil
	case "cron":
		return jobv1.TriggerType_TRIGGER_TYPE_CRON, nil
	case "webhook":
		return jobv1.TriggerType_TRIGGER_TYPE_WEBHOOK, nil
	case "pipeline", "pipeline_completed":
		return jobv1.TriggerType_TRIGGER_TYPE_PIPELINE, nil
	}
	return 0, fmt.Errorf("unknown trigger type %q; want manual, cron, webhook or pipeline", s)
}

// TriggerName is the short name of a trigger type ("cron").
func TriggerName(t jobv1.TriggerType) string {
	switch t {
	case jobv1.TriggerType_TRIGGER_TYPE_MANUAL:
		return "manual"
	case jobv1.TriggerType_TRIGGER_TYPE_CRON:
		return "cron"
	case jobv1.TriggerType_TRIGGER_TYPE_WEBHOOK:
		return "webhook"
	case jobv1.TriggerType_TRIGGER_TYPE_PIPELINE:
		return "pipeline"
	}
	return "unspecified"
}

func parseOperator(s string) (agentv1.LabelOperator, error) {
	norm := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), "-", "_"))
	switch norm {
	case "NOTIN":
		norm = "NOT_IN"
	case "NOTEXISTS", "DOESNOTEXIST", "DOES_NOT_EXIST":
		norm = "NOT_EXISTS"
	}
	norm = strings.TrimPrefix(norm, "LABEL_OPERATOR_")
	if v, ok := agentv1.LabelOperator_value["LABEL_OPERATOR_"+norm]; ok && v != 0 {
		return agentv1.LabelOperator(v), nil
	}
	return 0, fmt.Errorf("unknown operator %q; want In, NotIn, Exists, NotExists, Gt or Lt", s)
}
