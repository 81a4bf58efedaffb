package main

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

func TestExecuteInput(t *testing.T) {
	in, err := executeInput("next", `{"bump":"major","dry":true}`, []string{"bump=minor", "note=a=b"})
	if err != nil {
		t.Fatal(err)
	}
	req := new(pluginv1.ExecuteRequest)
	if err := protojson.Unmarshal([]byte(in), req); err != nil {
		t.Fatal(err)
	}
	p := req.GetParams().AsMap()
	if req.GetAction() != "next" || p["bump"] != "minor" || p["dry"] != true || p["note"] != "a=b" {
		t.Errorf("request %s", in)
	}
	for _, bad := range [][]string{{"novalue"}, {"=v"}} {
		if _, err := executeInput("a", "", bad); err == nil || !strings.Contains(err.Error(), "want K=V") {
			t.Errorf("--param %q: %v", bad, err)
		}
	}
	if _, err := executeInput("a", "[1]", nil); err == nil || !strings.Contains(err.Error(), "--params: want a JSON object") {
		t.Errorf("--params [1]: %v", err)
	}
	if err := executeOutcome(`{"status":"STATUS_FAILURE","messages":[{"text":"nope"}]}`); err == nil || !strings.Contains(err.Error(), "FAILURE: nope") {
		t.Errorf("failed action: %v", err)
	}
	if err := executeOutcome(`{"status":"STATUS_SUCCESS"}`); err != nil {
		t.Errorf("successful action: %v", err)
	}
}
