package server

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The credentials file holds only tokens the server takes: generated ones
// are kept, read back on the next start, and struck out once the tokens
// come from elsewhere; the log says where each token comes from.
func TestCredentialsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "credentials.env")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

	// First start, nothing given: both generated and written.
	cfg := Config{DataDir: dir}
	file, err := loadCredentials(&cfg, now, log)
	if err != nil || file != path || cfg.APIToken == "" || cfg.AgentToken == "" {
		t.Fatalf("first start: %q %v %+v", file, err, cfg)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "ARCADE_API_TOKEN="+cfg.APIToken+"\n") {
		t.Fatalf("file:\n%s", b)
	}
	generated := cfg.APIToken

	// Second start: read back.
	cfg = Config{DataDir: dir}
	if file, err := loadCredentials(&cfg, now, log); err != nil || file != path || cfg.APIToken != generated {
		t.Fatalf("second start: %q %v %q", file, err, cfg.APIToken)
	}

	// The API token from the environment: the file no longer holds an API
	// token (its line is struck out), the agent token stays.
	logs.Reset()
	cfg = Config{DataDir: dir, APIToken: "from-env", APITokenFrom: "ARCADE_API_TOKEN"}
	file, err = loadCredentials(&cfg, now, log)
	if err != nil || file != "" || cfg.APIToken != "from-env" {
		t.Fatalf("api token from the environment: %q %v %q", file, err, cfg.APIToken)
	}
	b, _ = os.ReadFile(path)
	if strings.Contains(string(b), generated) || strings.Contains(string(b), "\nARCADE_API_TOKEN=") ||
		!strings.Contains(string(b), "# ARCADE_API_TOKEN: not used since 2026-12-06 10:00:00 UTC: the server takes it from ARCADE_API_TOKEN.") ||
		!strings.Contains(string(b), "\nARCADE_AGENT_TOKEN=") {
		t.Errorf("file after the API token moved to the environment:\n%s", b)
	}
	if !strings.Contains(logs.String(), "api_token_from=ARCADE_API_TOKEN") || !strings.Contains(logs.String(), "agent_token_from="+path) {
		t.Errorf("log:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "from-env") || strings.Contains(logs.String(), cfg.AgentToken) {
		t.Errorf("a token in the log:\n%s", logs.String())
	}

	// Both given, no file yet elsewhere: nothing written.
	other := t.TempDir()
	cfg = Config{DataDir: other, APIToken: "a", AgentToken: "b"}
	if file, err := loadCredentials(&cfg, now, log); err != nil || file != "" {
		t.Fatalf("both given: %q %v", file, err)
	}
	if _, err := os.Stat(filepath.Join(other, "credentials.env")); !os.IsNotExist(err) {
		t.Errorf("a credentials file was written with both tokens given: %v", err)
	}
}
