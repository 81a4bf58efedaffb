package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The no-token error points to the credentials file only when the file
// holds an API token: a server that takes its token from elsewhere strikes
// it out there, and sending someone to that file would get them a 401.
func TestNoTokenErrorPointsToLiveTokensOnly(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ARCADE_DATA_DIR", dir)
	path := filepath.Join(dir, "credentials.env")

	if msg := noTokenError().Error(); strings.Contains(msg, "credentials.env") || !strings.Contains(msg, "ARCADE_API_TOKEN") {
		t.Errorf("no credentials file: %q", msg)
	}
	struck := "# Arcade's generated tokens\nARCADE_AGENT_TOKEN=abc\n# ARCADE_API_TOKEN: not used since 2026-12-06 10:00:00 UTC: the server takes it from env ARCADE_API_TOKEN.\n"
	if err := os.WriteFile(path, []byte(struck), 0o600); err != nil {
		t.Fatal(err)
	}
	if msg := noTokenError().Error(); strings.Contains(msg, "credentials.env") {
		t.Errorf("the API token is struck out of the file, yet the error points there: %q", msg)
	}
	if err := os.WriteFile(path, []byte("ARCADE_AGENT_TOKEN=abc\nARCADE_API_TOKEN=def\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	msg := noTokenError().Error()
	if !strings.Contains(msg, path) || strings.Contains(msg, "def") {
		t.Errorf("the file holds the live API token: %q", msg)
	}
	// Through a client command, as the user meets it.
	t.Setenv("ARCADE_API_TOKEN", "")
	root := newRoot()
	root.SetArgs([]string{"job", "list", "--server", "127.0.0.1:1"})
	root.SetOut(&strings.Builder{})
	root.SetErr(&strings.Builder{})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "no API token") {
		t.Errorf("arcade job list without a token: %v", err)
	}
}
