package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// executeInput builds a custom plugin's ExecuteRequest from --action,
// --params (a JSON object) and --param K=V items, which win over --params.
func executeInput(action, params string, items []string) (string, error) {
	fields := map[string]any{}
	if params != "" {
		if err := json.Unmarshal([]byte(params), &fields); err != nil {
			return "", fmt.Errorf("--params: want a JSON object: %w", err)
		}
	}
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		if k = strings.TrimSpace(k); !ok || k == "" {
			return "", fmt.Errorf("--param %q: want K=V", it)
		}
		fields[k] = v
	}
	st, err := structpb.NewStruct(fields)
	if err != nil {
		return "", fmt.Errorf("--params: %w", err)
	}
	b, err := protojson.Marshal(&pluginv1.ExecuteRequest{Action: action, Params: st})
	if err != nil {
		return "", fmt.Errorf("encode the request: %w", err)
	}
	return string(b), nil
}

// executeOutcome turns an ExecuteResponse that failed into an error, so the
// command's exit status tells.
func executeOutcome(out string) error {
	resp := new(pluginv1.ExecuteResponse)
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal([]byte(out), resp); err != nil {
		return fmt.Errorf("the plugin's answer is not an ExecuteResponse: %w", err)
	}
	switch resp.GetStatus() {
	case pluginv1.Status_STATUS_FAILURE, pluginv1.Status_STATUS_ERROR:
		var texts []string
		for _, m := range resp.GetMessages() {
			texts = append(texts, m.GetText())
		}
		return fmt.Errorf("the action ended %s: %s", strings.TrimPrefix(resp.GetStatus().String(), "STATUS_"), strings.Join(texts, "; "))
	}
	return nil
}
