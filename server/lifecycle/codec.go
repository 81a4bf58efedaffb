package lifecycle

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// How definitions are stored: a pipeline's (and a run's) spec as protojson
// of the PipelineDetail, a job's steps as a JSON array of protojson Steps.

// EncodeSpec is the stored form of a pipeline definition.
func EncodeSpec(p *jobv1.PipelineDetail) []byte {
	b, err := protojson.Marshal(p)
	if err != nil {
		panic(fmt.Sprintf("marshal pipeline: %v", err)) // a valid message always marshals
	}
	return b
}

// DecodeSpec reads a stored pipeline definition.
func DecodeSpec(b []byte) (*jobv1.PipelineDetail, error) {
	p := new(jobv1.PipelineDetail)
	if err := protojson.Unmarshal(b, p); err != nil {
		return nil, fmt.Errorf("stored pipeline spec: %w", err)
	}
	return p, nil
}

// EncodeSteps is the stored form of a job's steps; nil without steps.
func EncodeSteps(steps []*agentv1.Step) ([]byte, error) {
	if len(steps) == 0 {
		return nil, nil
	}
	raw := make([]json.RawMessage, len(steps))
	for i, st := range steps {
		b, err := protojson.Marshal(st)
		if err != nil {
			return nil, fmt.Errorf("encode step %d: %w", i+1, err)
		}
		raw[i] = b
	}
	return json.Marshal(raw)
}

// DecodeSteps reads a job's stored steps.
func DecodeSteps(b []byte) ([]*agentv1.Step, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("decode steps: %w", err)
	}
	out := make([]*agentv1.Step, len(raw))
	for i, r := range raw {
		out[i] = new(agentv1.Step)
		if err := protojson.Unmarshal(r, out[i]); err != nil {
			return nil, fmt.Errorf("decode step %d: %w", i+1, err)
		}
	}
	return out, nil
}
