package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// A component tagged inside another is one key, not the key twice
// (component=server component=plugins).
func TestNestedComponents(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(nestedComponents{Handler: slog.NewJSONHandler(&b, nil)})
	log.With("component", "server").With("component", "plugins", "x", 1).Info("plugin loaded", "plugin", "go-lint")
	log.Info("no component")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if n := strings.Count(lines[0], `"component"`); n != 1 {
		t.Errorf("component appears %d times: %s", n, lines[0])
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["component"] != "server.plugins" || rec["x"] != float64(1) || rec["plugin"] != "go-lint" {
		t.Errorf("record: %v", rec)
	}
	if strings.Contains(lines[1], `"component":`) {
		t.Errorf("a record without component: %s", lines[1])
	}
}
