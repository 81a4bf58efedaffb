// Package bounds holds every request to a bound before any service sees
// it: each string field, each list and map, and whole definitions (a job, a
// pipeline, an agent's labels) have a size limit, and the text users write
// (names, commands, env, labels, selectors) holds no NUL byte and is valid
// UTF-8. A request over a bound is refused with InvalidArgument naming the
// field and the limit, and changes nothing.
//
// The rules go by field name, wherever the field appears, so a field added
// to a request later is bounded too: by the rule of its name, else by the
// defaults (64 KiB per string, 1,000 entries per list or map).
package bounds

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/go-arcade/arcade/core/pipeline"
)

// Rule bounds a field.
type Rule struct {
	// Bytes bounds a string (each element of a list, each value of a map).
	Bytes int
	// Items bounds the entries of a list or map.
	Items int
	// KeyBytes bounds a map's keys.
	KeyBytes int
	// FreeText fields may hold NUL (output read from programs).
	FreeText bool
	// Limit names the setting behind the bound, when one is configurable.
	Limit string
}

const (
	// DefaultBytes bounds a string field without a rule of its own.
	DefaultBytes = 64 << 10
	// DefaultItems bounds a list or map without a rule of its own.
	DefaultItems = 1000
	// keyBytes bounds map keys without a rule of their own.
	keyBytes = 256
	// labelKeyBytes bounds a label key: the longest valid one is 317.
	labelKeyBytes = 320
)

// Rules are the bounds of requests.
type Rules struct {
	fields   map[string]Rule // by field name
	messages map[protoreflect.FullName]Rule
}

// MaxJobBytes bounds a job's definition (CreateJob, UpdateJob), so any
// single job fits a page of any listing.
const MaxJobBytes = 1 << 20

// MaxAgentBytes bounds what an agent says of itself (Register, Heartbeat,
// UpdateLabels).
const MaxAgentBytes = 256 << 10

// New returns the rules. Names and ids are short; commands, env values and
// most text are up to 64 KiB; labels and selectors hold at most 100 entries
// of up to 256 bytes. A pipeline is held to the limits of pl (its stages,
// its jobs, its size as YAML or as the message); core/pipeline checks the
// rest of them.
func New(pl pipeline.Limits) *Rules {
	c := pl.WithDefaults()
	r := &Rules{fields: map[string]Rule{}, messages: map[protoreflect.FullName]Rule{}}
	for _, f := range []string{"name", "hostname", "os", "arch", "version", "stage", "function", "uses", "kind", "sha256",
		"timezone", "cron", "pipeline", "order_by", "agent_id", "job_id", "run_id", "pipeline_id"} {
		r.fields[f] = Rule{Bytes: 256}
	}
	// A label key: a DNS subdomain prefix (253), "/" and a name (63).
	r.fields["key"] = Rule{Bytes: labelKeyBytes}
	for _, f := range []string{"page_token", "image", "selector", "label_selector", "reason", "path"} {
		r.fields[f] = Rule{Bytes: 4 << 10}
	}
	r.fields["commands"] = Rule{Bytes: 64 << 10, Items: 1000}
	for _, f := range []string{"env", "with", "params", "config", "secrets"} {
		r.fields[f] = Rule{Bytes: 64 << 10, Items: 1000, KeyBytes: 256}
	}
	for _, f := range []string{"labels", "match_labels"} {
		r.fields[f] = Rule{Bytes: 256, Items: 100, KeyBytes: labelKeyBytes}
	}
	r.fields["match_expressions"] = Rule{Items: 100}
	r.fields["values"] = Rule{Bytes: 256, Items: 100}
	r.fields["steps"] = Rule{Items: 100}
	r.fields["depends_on"] = Rule{Bytes: 256, Items: 1000}
	r.fields["triggers"] = Rule{Items: 100}
	r.fields["branches"] = Rule{Bytes: 256, Items: 100}
	r.fields["paths"] = Rule{Bytes: 4 << 10, Items: 100}
	r.fields["plugins"] = Rule{Bytes: 256, Items: 1000}
	r.fields["remove_keys"] = Rule{Bytes: 256, Items: 100}
	r.fields["statuses"] = Rule{Items: 16}
	r.fields["artifacts"] = Rule{Items: 10_000}
	r.fields["running_job_ids"] = Rule{Bytes: 256, Items: 10_000}
	r.fields["chunks"] = Rule{Items: 100_000}
	r.fields["content"] = Rule{Bytes: 1 << 20, FreeText: true}
	r.fields["message"] = Rule{Bytes: 64 << 10, FreeText: true}
	r.fields["input_json"] = Rule{Bytes: 4 << 20, FreeText: true}
	r.fields["yaml"] = Rule{Bytes: c.YAMLBytes, Limit: "pipeline_limits.yaml_bytes"}
	r.fields["stages"] = Rule{Items: c.Stages, Limit: "pipeline_limits.stages"}
	r.fields["jobs"] = Rule{Items: c.Jobs, Limit: "pipeline_limits.jobs"}
	r.messages["arcade.job.v1.PipelineDetail"] = Rule{Bytes: c.YAMLBytes, Limit: "pipeline_limits.yaml_bytes"}
	r.messages["arcade.job.v1.CreateJobRequest"] = Rule{Bytes: MaxJobBytes}
	r.messages["arcade.job.v1.UpdateJobRequest"] = Rule{Bytes: MaxJobBytes}
	for _, m := range []protoreflect.FullName{"arcade.agent.v1.RegisterRequest", "arcade.agent.v1.HeartbeatRequest", "arcade.agent.v1.UpdateLabelsRequest"} {
		r.messages[m] = Rule{Bytes: MaxAgentBytes}
	}
	return r
}

// Error is a field over its bound, or holding what text must not.
type Error struct {
	Field  string
	Reason string
}

func (e *Error) Error() string { return e.Field + ": " + e.Reason }

// Check walks a request and returns the first field over its bound (in
// field order, map keys sorted), nil when it is within them. Its cost is
// linear in the message's size.
func (r *Rules) Check(m proto.Message) error {
	if m == nil {
		return nil
	}
	return r.message("", m.ProtoReflect())
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func (r *Rules) message(path string, m protoreflect.Message) error {
	md := m.Descriptor()
	if rule, ok := r.messages[md.FullName()]; ok && rule.Bytes > 0 {
		if n := proto.Size(m.Interface()); n > rule.Bytes {
			field := path
			if field == "" {
				field = string(md.Name())
			}
			return over(field, rule, n, "bytes", rule.Bytes)
		}
	}
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		name := join(path, string(fd.Name()))
		rule := r.fields[string(fd.Name())]
		v := m.Get(fd)
		switch {
		case fd.IsMap():
			if err := r.mapField(name, fd, v.Map(), rule); err != nil {
				return err
			}
		case fd.IsList():
			if err := r.list(name, fd, v.List(), rule); err != nil {
				return err
			}
		default:
			if err := r.single(name, fd, v, rule); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *Rules) mapField(name string, fd protoreflect.FieldDescriptor, mv protoreflect.Map, rule Rule) error {
	if max := or(rule.Items, DefaultItems); mv.Len() > max {
		return over(name, rule, mv.Len(), "entries", max)
	}
	keys := make(map[string]protoreflect.MapKey, mv.Len())
	mv.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys[k.String()] = k
		return true
	})
	for _, ks := range slices.Sorted(maps.Keys(keys)) {
		k := keys[ks]
		field := fmt.Sprintf("%s[%q]", name, ks)
		if fd.MapKey().Kind() == protoreflect.StringKind {
			if err := text(field, ks, Rule{Bytes: or(rule.KeyBytes, keyBytes)}, "key "); err != nil {
				return err
			}
		}
		if err := r.single(field, fd.MapValue(), mv.Get(k), rule); err != nil {
			return err
		}
	}
	return nil
}

func (r *Rules) list(name string, fd protoreflect.FieldDescriptor, l protoreflect.List, rule Rule) error {
	if max := or(rule.Items, DefaultItems); l.Len() > max {
		return over(name, rule, l.Len(), "entries", max)
	}
	for i := range l.Len() {
		if err := r.single(name+"["+strconv.Itoa(i)+"]", fd, l.Get(i), rule); err != nil {
			return err
		}
	}
	return nil
}

func (r *Rules) single(name string, fd protoreflect.FieldDescriptor, v protoreflect.Value, rule Rule) error {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return text(name, v.String(), rule, "")
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return r.message(name, v.Message())
	}
	return nil
}

// text checks a string's size and, unless free text, that it holds no NUL.
// (Valid UTF-8 is checked as requests are decoded: see Codec.)
func text(field, s string, rule Rule, what string) error {
	if max := or(rule.Bytes, DefaultBytes); len(s) > max {
		return over(field, rule, len(s), what+"bytes", max)
	}
	if !rule.FreeText && strings.IndexByte(s, 0) >= 0 {
		return &Error{Field: field, Reason: "must not hold a NUL byte"}
	}
	return nil
}

func over(field string, rule Rule, got int, unit string, max int) error {
	reason := fmt.Sprintf("%d %s, more than the limit of %d", got, unit, max)
	if rule.Limit != "" {
		reason += " (" + rule.Limit + ")"
	}
	return &Error{Field: field, Reason: reason}
}

func or(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}
