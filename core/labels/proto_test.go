package labels

import (
	"testing"

	"google.golang.org/protobuf/proto"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
)

func TestProtoRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		sel  Selector
		pb   *agentv1.LabelSelector
	}{
		{"empty", Selector{}, &agentv1.LabelSelector{}},
		{"every operator", Selector{
			MatchLabels: map[string]string{"region": "us-west", "gpu": ""},
			Requirements: []Requirement{
				req("env", In, "staging", "production"),
				req("tier", NotIn, "free"),
				req("kubernetes.io/arch", Exists),
				req("spot", NotExists),
				req("cpu-cores", GT, "8"),
				req("temp", LT, "-5"),
			},
		}, &agentv1.LabelSelector{
			MatchLabels: map[string]string{"region": "us-west", "gpu": ""},
			MatchExpressions: []*agentv1.LabelSelectorRequirement{
				{Key: "env", Operator: agentv1.LabelOperator_LABEL_OPERATOR_IN, Values: []string{"staging", "production"}},
				{Key: "tier", Operator: agentv1.LabelOperator_LABEL_OPERATOR_NOT_IN, Values: []string{"free"}},
				{Key: "kubernetes.io/arch", Operator: agentv1.LabelOperator_LABEL_OPERATOR_EXISTS},
				{Key: "spot", Operator: agentv1.LabelOperator_LABEL_OPERATOR_NOT_EXISTS},
				{Key: "cpu-cores", Operator: agentv1.LabelOperator_LABEL_OPERATOR_GT, Values: []string{"8"}},
				{Key: "temp", Operator: agentv1.LabelOperator_LABEL_OPERATOR_LT, Values: []string{"-5"}},
			},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pb := tt.sel.Proto()
			if pb == nil {
				t.Fatal("Proto() = nil")
			}
			if !proto.Equal(pb, tt.pb) {
				t.Errorf("Proto() = %v, want %v", pb, tt.pb)
			}
			back, err := FromProto(pb)
			if err != nil {
				t.Fatalf("FromProto(Proto()) error: %v", err)
			}
			if !equal(back, tt.sel) {
				t.Errorf("FromProto(Proto()) = %#v, want %#v", back, tt.sel)
			}
			// Through the wire and back.
			b, err := proto.Marshal(pb)
			if err != nil {
				t.Fatal(err)
			}
			var decoded agentv1.LabelSelector
			if err := proto.Unmarshal(b, &decoded); err != nil {
				t.Fatal(err)
			}
			back, err = FromProto(&decoded)
			if err != nil {
				t.Fatalf("FromProto(decoded) error: %v", err)
			}
			if !equal(back, tt.sel) {
				t.Errorf("FromProto(decoded) = %#v, want %#v", back, tt.sel)
			}
		})
	}
}

func TestProtoFromParse(t *testing.T) {
	sel, err := Parse(fullExample)
	if err != nil {
		t.Fatal(err)
	}
	back, err := FromProto(sel.Proto())
	if err != nil {
		t.Fatal(err)
	}
	if got := back.String(); got != sel.String() {
		t.Errorf("FromProto(Proto()).String() = %q, want %q", got, sel.String())
	}
}

func TestFromProtoEmpty(t *testing.T) {
	for _, pb := range []*agentv1.LabelSelector{
		nil,
		{},
		{MatchLabels: map[string]string{}, MatchExpressions: []*agentv1.LabelSelectorRequirement{}},
	} {
		got, err := FromProto(pb)
		if err != nil {
			t.Errorf("FromProto(%v) error: %v", pb, err)
		}
		if got.MatchLabels != nil || got.Requirements != nil {
			t.Errorf("FromProto(%v) = %#v, want the zero Selector", pb, got)
		}
	}
}

func TestFromProtoErrors(t *testing.T) {
	tests := []struct {
		name   string
		pb     *agentv1.LabelSelector
		field  string
		reason string
	}{
		{"bad match label key",
			&agentv1.LabelSelector{MatchLabels: map[string]string{"Bad Key": "x"}},
			`match_labels["Bad Key"]`, "invalid key"},
		{"bad match label value",
			&agentv1.LabelSelector{MatchLabels: map[string]string{"env": "-x"}},
			`match_labels["env"]`, `invalid value "-x"`},
		{"unspecified operator",
			&agentv1.LabelSelector{MatchExpressions: []*agentv1.LabelSelectorRequirement{
				{Key: "gpu", Operator: agentv1.LabelOperator_LABEL_OPERATOR_EXISTS},
				{Key: "env", Values: []string{"a"}},
			}},
			"match_expressions[1].operator", "operator must be specified"},
		{"unknown operator",
			&agentv1.LabelSelector{MatchExpressions: []*agentv1.LabelSelectorRequirement{
				{Key: "env", Operator: agentv1.LabelOperator(99)},
			}},
			"match_expressions[0].operator", "unknown operator 99"},
		{"bad key",
			&agentv1.LabelSelector{MatchExpressions: []*agentv1.LabelSelectorRequirement{
				{Key: "a/b/c", Operator: agentv1.LabelOperator_LABEL_OPERATOR_EXISTS},
			}},
			"match_expressions[0].key", `invalid key "a/b/c"`},
		{"in without values",
			&agentv1.LabelSelector{MatchExpressions: []*agentv1.LabelSelectorRequirement{
				{Key: "env", Operator: agentv1.LabelOperator_LABEL_OPERATOR_IN},
			}},
			"match_expressions[0].values", "at least one value"},
		{"gt not an integer",
			&agentv1.LabelSelector{MatchExpressions: []*agentv1.LabelSelectorRequirement{
				{Key: "cpu", Operator: agentv1.LabelOperator_LABEL_OPERATOR_GT, Values: []string{"many"}},
			}},
			"match_expressions[0].values[0]", `GT needs an integer, got "many"`},
		{"nil expression",
			&agentv1.LabelSelector{MatchExpressions: []*agentv1.LabelSelectorRequirement{nil}},
			"match_expressions[0].key", "must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromProto(tt.pb)
			checkFieldError(t, "FromProto", err, tt.field, tt.reason)
			if !got.Empty() {
				t.Errorf("FromProto returned %#v with its error, want the empty selector", got)
			}
		})
	}
}

func TestOperatorProtoMapping(t *testing.T) {
	for op := In; op <= LT; op++ {
		pb := operatorToProto(op)
		if pb == agentv1.LabelOperator_LABEL_OPERATOR_UNSPECIFIED {
			t.Errorf("operatorToProto(%v) = UNSPECIFIED", op)
		}
		if back := operatorFromProto(pb); back != op {
			t.Errorf("operatorFromProto(operatorToProto(%v)) = %v", op, back)
		}
	}
	if got := operatorToProto(0); got != agentv1.LabelOperator_LABEL_OPERATOR_UNSPECIFIED {
		t.Errorf("operatorToProto(0) = %v, want UNSPECIFIED", got)
	}
	if got := operatorToProto(Operator(42)); got != agentv1.LabelOperator_LABEL_OPERATOR_UNSPECIFIED {
		t.Errorf("operatorToProto(42) = %v, want UNSPECIFIED", got)
	}
	if got := operatorFromProto(agentv1.LabelOperator_LABEL_OPERATOR_UNSPECIFIED); got != 0 {
		t.Errorf("operatorFromProto(UNSPECIFIED) = %v, want 0", got)
	}
	// Every wire operator but UNSPECIFIED maps to a distinct Operator.
	seen := map[Operator]bool{}
	for n := range agentv1.LabelOperator_name {
		if n == 0 {
			continue
		}
		op := operatorFromProto(agentv1.LabelOperator(n))
		if !op.valid() || seen[op] {
			t.Errorf("operatorFromProto(%d) = %v", n, op)
		}
		seen[op] = true
	}
}

func TestProtoDoesNotAlias(t *testing.T) {
	sel := Selector{MatchLabels: map[string]string{"a": "1"}, Requirements: []Requirement{req("x", In, "p")}}
	pb := sel.Proto()
	pb.MatchLabels["a"] = "changed"
	pb.MatchExpressions[0].Values[0] = "changed"
	if sel.MatchLabels["a"] != "1" || sel.Requirements[0].Values[0] != "p" {
		t.Errorf("Proto() shares memory with the selector: %#v", sel)
	}
	back, err := FromProto(sel.Proto())
	if err != nil {
		t.Fatal(err)
	}
	pb2 := sel.Proto()
	back2, _ := FromProto(pb2)
	back2.MatchLabels["a"] = "changed"
	back2.Requirements[0].Values[0] = "changed"
	if pb2.MatchLabels["a"] != "1" || pb2.MatchExpressions[0].Values[0] != "p" || !equal(back, sel) {
		t.Errorf("FromProto shares memory with the message: %v", pb2)
	}
}
