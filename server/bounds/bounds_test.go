package bounds

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/pipeline"
)

func many(n int, f func(i int) string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func manyMap(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	return m
}

func TestCheck(t *testing.T) {
	r := New(pipeline.Limits{Jobs: 50, Stages: 5})
	exprs := make([]*agentv1.LabelSelectorRequirement, 100_000)
	for i := range exprs {
		exprs[i] = &agentv1.LabelSelectorRequirement{Key: "k", Operator: agentv1.LabelOperator_LABEL_OPERATOR_EXISTS}
	}
	stage := &jobv1.Stage{Name: "s"}
	for i := range 51 {
		stage.Jobs = append(stage.Jobs, &jobv1.PipelineJob{Name: fmt.Sprint(i), Commands: []string{"x"}})
	}
	cases := []struct {
		name  string
		req   proto.Message
		field string // "" when accepted
		say   string
	}{
		{"a plain job", &jobv1.CreateJobRequest{Name: "build", Commands: []string{"make"}, Env: map[string]string{"A": "b"},
			Labels: map[string]string{"team": "web"}, Selector: "env=prod"}, "", ""},
		{"10 MB name", &jobv1.CreateJobRequest{Name: strings.Repeat("n", 10<<20), Commands: []string{"x"}}, "CreateJobRequest", "more than the limit of 1048576"},
		{"long name", &jobv1.CreateJobRequest{Name: strings.Repeat("n", 300), Commands: []string{"x"}}, "name", "300 bytes, more than the limit of 256"},
		{"3 MB command", &jobv1.CreateJobRequest{Commands: []string{"x", strings.Repeat("c", 3<<20)}}, "CreateJobRequest", "bytes"},
		{"100 KB command", &jobv1.CreateJobRequest{Commands: []string{"x", strings.Repeat("c", 100<<10)}}, "commands[1]", "102400 bytes, more than the limit of 65536"},
		{"100,000 commands", &jobv1.CreateJobRequest{Commands: many(100_000, func(int) string { return "x" })}, "commands", "100000 entries, more than the limit of 1000"},
		{"50,000 env", &jobv1.CreateJobRequest{Commands: []string{"x"}, Env: manyMap(50_000)}, "env", "50000 entries"},
		{"10,000 labels", &jobv1.CreateJobRequest{Commands: []string{"x"}, Labels: manyMap(10_000)}, "labels", "10000 entries, more than the limit of 100"},
		{"100,000-term selector", &jobv1.CreateJobRequest{Commands: []string{"x"}, LabelSelector: &agentv1.LabelSelector{MatchExpressions: exprs}},
			"label_selector.match_expressions", "100000 entries"},
		{"NUL in the name", &jobv1.CreateJobRequest{Name: "nul\x00name2", Commands: []string{"x"}}, "name", "NUL"},
		{"NUL in a command", &jobv1.CreateJobRequest{Commands: []string{"printf %s a\x00b"}}, "commands[0]", "NUL"},
		{"NUL in env", &jobv1.CreateJobRequest{Commands: []string{"x"}, Env: map[string]string{"A": "c\x00d"}}, `env["A"]`, "NUL"},
		{"NUL in an env name", &jobv1.CreateJobRequest{Commands: []string{"x"}, Env: map[string]string{"A\x00": "d"}}, `env["A\x00"]`, "NUL"},
		{"NUL in a label", &jobv1.CreateJobRequest{Commands: []string{"x"}, Labels: map[string]string{"a": "\x00"}}, `labels["a"]`, "NUL"},
		{"NUL in a step", &jobv1.CreateJobRequest{Steps: []*agentv1.Step{{Commands: []string{"ok"}}, {Commands: []string{"a\x00"}}}}, "steps[1].commands[0]", "NUL"},
		{"agent labels on Register", &agentv1.RegisterRequest{Name: "a", Labels: manyMap(10_000)}, "labels", "10000 entries"},
		{"agent labels on Heartbeat", &agentv1.HeartbeatRequest{AgentId: "a", Labels: manyMap(101)}, "labels", "101 entries, more than the limit of 100"},
		{"agent labels on UpdateLabels", &agentv1.UpdateLabelsRequest{AgentId: "a", Labels: map[string]string{"k": strings.Repeat("v", 300)}}, `labels["k"]`, "300 bytes"},
		{"labels on the channel", &jobv1.AgentChannelRequest{Payload: &jobv1.AgentChannelRequest_Heartbeat{Heartbeat: &agentv1.HeartbeatRequest{Labels: manyMap(200)}}},
			"heartbeat.labels", "200 entries"},
		{"a stage over the job limit", &jobv1.CreatePipelineRequest{Pipeline: &jobv1.PipelineDetail{Name: "p", Stages: []*jobv1.Stage{stage}}},
			"pipeline.stages[0].jobs", "51 entries, more than the limit of 50 (pipeline_limits.jobs)"},
		{"yaml over its limit", &jobv1.CreatePipelineRequest{Yaml: strings.Repeat("#", pipeline.DefaultLimits.YAMLBytes+1)}, "yaml", "(pipeline_limits.yaml_bytes)"},
		{"the longest valid label key", &jobv1.CreateJobRequest{Commands: []string{"x"},
			Labels: map[string]string{strings.Repeat("a", 253) + "/" + strings.Repeat("b", 63): "v"}}, "", ""},
		{"log lines may hold NUL", &agentv1.ReportJobLogRequest{Chunks: []*agentv1.LogChunk{{Content: "a\x00b"}}}, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := r.Check(c.req)
			if c.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Field != c.field || !strings.Contains(e.Reason, c.say) {
				t.Fatalf("got %v; want field %s saying %q", err, c.field, c.say)
			}
		})
	}
}

// TestCodecNamesInvalidUTF8 sends wire bytes no Go client would produce: a
// string field that is not UTF-8.
func TestCodecNamesInvalidUTF8(t *testing.T) {
	c := NewCodec()
	good, _ := proto.Marshal(&jobv1.CreateJobRequest{Name: "ok", Commands: []string{"x"}})
	var b []byte
	b = protowire.AppendTag(b, 2, protowire.BytesType) // commands[0]
	b = protowire.AppendString(b, "fine")
	b = protowire.AppendTag(b, 2, protowire.BytesType) // commands[1]
	b = protowire.AppendBytes(b, []byte{'a', 0xff, 'b'})
	entry := protowire.AppendTag(nil, 1, protowire.BytesType)
	entry = protowire.AppendString(entry, "E")
	entry = protowire.AppendTag(entry, 2, protowire.BytesType)
	entry = protowire.AppendBytes(entry, []byte{0xc3, 0x28})
	envOnly := protowire.AppendTag(nil, 3, protowire.BytesType)
	envOnly = protowire.AppendBytes(envOnly, entry)
	for _, tc := range []struct {
		wire  []byte
		field string
	}{{good, ""}, {b, "commands[1]"}, {envOnly, `env["E"]`}} {
		req := new(jobv1.CreateJobRequest)
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(tc.wire)}, req); err != nil {
			t.Fatalf("codec error: %v", err)
		}
		err := c.take(req)
		var e *Error
		switch {
		case tc.field == "" && err != nil:
			t.Fatalf("valid message noted: %v", err)
		case tc.field != "" && (!errors.As(err, &e) || e.Field != tc.field || !strings.Contains(e.Reason, "UTF-8")):
			t.Fatalf("got %v; want %s", err, tc.field)
		}
		if c.take(req) != nil {
			t.Fatal("a note was taken twice")
		}
	}
	// Other decoding errors stay errors.
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0xff})}, new(jobv1.CreateJobRequest)); err == nil {
		t.Fatal("garbage decoded")
	}
	if c.Name() != encoding.GetCodecV2("proto").Name() {
		t.Fatal("codec name")
	}
}
