package labels

import (
	"maps"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
)

// FromProto converts the wire form to a Selector and validates it. A nil
// message is the empty selector. Empty maps and value lists become nil. The
// result shares no maps or slices with s.
func FromProto(s *agentv1.LabelSelector) (Selector, error) {
	var out Selector
	if m := s.GetMatchLabels(); len(m) > 0 {
		out.MatchLabels = maps.Clone(m)
	}
	if exprs := s.GetMatchExpressions(); len(exprs) > 0 {
		out.Requirements = make([]Requirement, len(exprs))
		for i, e := range exprs {
			out.Requirements[i] = Requirement{
				Key:    e.GetKey(),
				Op:     operatorFromProto(e.GetOperator()),
				Values: cloneValues(e.GetValues()),
			}
		}
	}
	if err := out.Validate(); err != nil {
		return Selector{}, err
	}
	return out, nil
}

// Proto returns the wire form of the selector. It never returns nil: the
// empty selector gives an empty message. The message shares no maps or
// slices with s. An operator outside In..LT becomes
// LABEL_OPERATOR_UNSPECIFIED.
func (s Selector) Proto() *agentv1.LabelSelector {
	out := &agentv1.LabelSelector{}
	if len(s.MatchLabels) > 0 {
		out.MatchLabels = maps.Clone(s.MatchLabels)
	}
	if len(s.Requirements) > 0 {
		out.MatchExpressions = make([]*agentv1.LabelSelectorRequirement, len(s.Requirements))
		for i, r := range s.Requirements {
			out.MatchExpressions[i] = &agentv1.LabelSelectorRequirement{
				Key:      r.Key,
				Operator: operatorToProto(r.Op),
				Values:   cloneValues(r.Values),
			}
		}
	}
	return out
}

// operatorFromProto maps a wire operator to an Operator. Unspecified becomes
// the zero Operator and an unknown number an Operator outside In..LT, both of
// which Validate rejects.
func operatorFromProto(op agentv1.LabelOperator) Operator {
	switch op {
	case agentv1.LabelOperator_LABEL_OPERATOR_UNSPECIFIED:
		return 0
	case agentv1.LabelOperator_LABEL_OPERATOR_IN:
		return In
	case agentv1.LabelOperator_LABEL_OPERATOR_NOT_IN:
		return NotIn
	case agentv1.LabelOperator_LABEL_OPERATOR_EXISTS:
		return Exists
	case agentv1.LabelOperator_LABEL_OPERATOR_NOT_EXISTS:
		return NotExists
	case agentv1.LabelOperator_LABEL_OPERATOR_GT:
		return GT
	case agentv1.LabelOperator_LABEL_OPERATOR_LT:
		return LT
	}
	return Operator(op)
}

// operatorToProto maps an Operator to the wire form; anything outside In..LT
// becomes LABEL_OPERATOR_UNSPECIFIED.
func operatorToProto(op Operator) agentv1.LabelOperator {
	switch op {
	case In:
		return agentv1.LabelOperator_LABEL_OPERATOR_IN
	case NotIn:
		return agentv1.LabelOperator_LABEL_OPERATOR_NOT_IN
	case Exists:
		return agentv1.LabelOperator_LABEL_OPERATOR_EXISTS
	case NotExists:
		return agentv1.LabelOperator_LABEL_OPERATOR_NOT_EXISTS
	case GT:
		return agentv1.LabelOperator_LABEL_OPERATOR_GT
	case LT:
		return agentv1.LabelOperator_LABEL_OPERATOR_LT
	}
	return agentv1.LabelOperator_LABEL_OPERATOR_UNSPECIFIED
}
