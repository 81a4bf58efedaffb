package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
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
	// Include, Templates, Concurrency: see expand.go and data.go.
	Include     stringList         `yaml:"include"`
	Templates   map[string]jobSpec `yaml:"templates"`
	Concurrency *concurrencySpec   `yaml:"concurrency"`
}

// stringList is a list of strings, or one string.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = []string{n.Value}
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return err
	}
	*l = list
	return nil
}

type concurrencySpec struct {
	Group            string `yaml:"group"`
	CancelInProgress bool   `yaml:"cancel_in_progress"`
}

type cacheSpec struct {
	Key         string     `yaml:"key"`
	RestoreKeys stringList `yaml:"restore_keys"`
	Paths       stringList `yaml:"paths"`
}

// matrixSpec is a job's matrix: axes as keys, in the order written, plus
// include, exclude and fail_fast.
type matrixSpec struct {
	m *jobv1.Matrix
}

func (ms *matrixSpec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: matrix: want a mapping of axes (and include, exclude, fail_fast)", n.Line)
	}
	m := &jobv1.Matrix{}
	combos := func(v *yaml.Node) ([]*jobv1.MatrixCombination, error) {
		var list []map[string]string
		if err := v.Decode(&list); err != nil {
			return nil, err
		}
		out := make([]*jobv1.MatrixCombination, len(list))
		for i, c := range list {
			out[i] = &jobv1.MatrixCombination{Values: c}
		}
		return out, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var err error
		switch k.Value {
		case "include":
			m.Include, err = combos(v)
		case "exclude":
			m.Exclude, err = combos(v)
		case "fail_fast":
			err = v.Decode(&m.FailFast)
		default:
			var values []string
			if err = v.Decode(&values); err != nil {
				return fmt.Errorf("line %d: matrix axis %s: want a list of values", v.Line, k.Value)
			}
			m.Axes = append(m.Axes, &jobv1.MatrixAxis{Name: k.Value, Values: values})
		}
		if err != nil {
			return fmt.Errorf("line %d: matrix.%s: %v", v.Line, k.Value, err)
		}
	}
	ms.m = m
	return nil
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

	Extends        stringList       `yaml:"extends"`
	Matrix         *matrixSpec      `yaml:"matrix"`
	Cache          *cacheSpec       `yaml:"cache"`
	NeedsArtifacts stringList       `yaml:"needs_artifacts"`
	Outputs        stringList       `yaml:"outputs"`
	If             string           `yaml:"if"`
	Concurrency    *concurrencySpec `yaml:"concurrency"`
	Type           string           `yaml:"type"`
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
	p := &jobv1.PipelineDetail{Name: f.Name, Env: f.Env, SecretRefs: f.Secrets, Include: f.Include,
		Concurrency: f.Concurrency.proto()}
	names := make([]string, 0, len(f.Templates))
	for name := range f.Templates {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		pj, err := parseJob("templates."+name, f.Templates[name])
		if err != nil {
			return nil, err
		}
		if p.Templates == nil {
			p.Templates = map[string]*jobv1.PipelineJob{}
		}
		p.Templates[name] = pj
	}
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
		SkipCheckout: j.Checkout != nil && !*j.Checkout,
		Extends:      j.Extends, NeedsArtifacts: j.NeedsArtifacts, Outputs: j.Outputs, If: j.If,
		Concurrency: j.Concurrency.proto()}
	if j.Matrix != nil {
		pj.Matrix = j.Matrix.m
	}
	if c := j.Cache; c != nil {
		pj.Cache = &agentv1.CacheConfig{Key: c.Key, RestoreKeys: c.RestoreKeys, Paths: c.Paths}
	}
	switch strings.ToLower(strings.TrimSpace(j.Type)) {
	case "", "run", "job":
	case "approval":
		pj.Type = jobv1.JobType_JOB_TYPE_APPROVAL
	default:
		return nil, errorf(field+".type", "unknown type %q; want approval (or leave it out)", j.Type)
	}
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
	// Left unspecified (on_success) when not written, so that a template's
	// when is not overridden by a job that says nothing.
	if strings.TrimSpace(j.When) != "" {
		if pj.When, err = ParseWhen(j.When); err != nil {
			return nil, errorf(field+".when", "%v", err)
		}
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

func (c *concurrencySpec) proto() *jobv1.Concurrency {
	if c == nil {
		return nil
	}
	return &jobv1.Concurrency{Group: c.Group, CancelInProgress: c.CancelInProgress}
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

// Lines maps the fields of a pipeline file ("stages[0].jobs[1].image") to
// the lines they were written on, so that an error can name its line. The
// file is indexed when a line is first asked for: a valid pipeline, the
// usual case, never pays for it.
type Lines struct {
	data []byte
	once sync.Once
	at   map[string]int
}

// yamlNames are YAML keys whose field has another name.
var yamlNames = map[string]string{"secrets": "secret_refs"}

// IndexLines returns the index of where each field of a pipeline file is
// written; a file that does not parse gives an empty index.
func IndexLines(data []byte) *Lines { return &Lines{data: data} }

func (l *Lines) index() {
	l.at = map[string]int{}
	var doc yaml.Node
	if err := yaml.Unmarshal(l.data, &doc); err != nil || len(doc.Content) == 0 {
		return
	}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				if path == "" {
					if alias, ok := yamlNames[k]; ok {
						k = alias
					}
				}
				p := k
				if path != "" {
					p = path + "." + k
				}
				l.at[p] = n.Content[i].Line
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := indexField(path, i)
				l.at[p] = c.Line
				walk(c, p)
			}
		}
	}
	walk(doc.Content[0], "")
}

// Line is the line of field, or of the nearest field around it; 0 when
// unknown.
func (l *Lines) Line(field string) int {
	if l == nil {
		return 0
	}
	l.once.Do(l.index)
	for f := field; f != ""; {
		if n, ok := l.at[f]; ok {
			return n
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return 0
}

// Annotate sets the line of a *Error that has none, looking its field up
// as written (a matrix combination's field is its matrix job's).
func (l *Lines) Annotate(err error, exp *Expanded) error {
	var pe *Error
	if l == nil || !errors.As(err, &pe) || pe.Line > 0 || pe.File != "" {
		return err
	}
	out := *pe
	out.Line = l.Line(exp.SourceField(pe.Field))
	return &out
}
