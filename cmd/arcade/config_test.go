package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// TestConfigPrecedence: flags > ARCADE_* environment > file > defaults.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(file, []byte("listen: 127.0.0.1:7000\ndata_dir: from-file\ndb: sqlite://file.db\nheartbeat_interval: 7s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ARCADE_DATA_DIR", "from-env")
	t.Setenv("ARCADE_DB", "sqlite://env.db")
	flags := pflag.NewFlagSet("server", pflag.ContinueOnError)
	flags.String("config", "", "")
	addServerFlags(flags)
	if err := flags.Parse([]string{"--db", "sqlite://flag.db"}); err != nil {
		t.Fatal(err)
	}
	var s serverSettings
	if err := loadConfig(&s, serverDefaults, file, true, flags); err != nil {
		t.Fatal(err)
	}
	want := serverSettings{
		Listen:            "127.0.0.1:7000", // file
		DataDir:           "from-env",       // env over file
		DB:                "sqlite://flag.db",
		HeartbeatInterval: 7 * time.Second,
		MaxPollWait:       30 * time.Second, // default
		PluginsConfig:     "conf.d/plugins.yaml",
		PluginDirs:        []string{"plugins"},
	}
	if s.Listen != want.Listen || s.DataDir != want.DataDir || s.DB != want.DB ||
		s.HeartbeatInterval != want.HeartbeatInterval || s.MaxPollWait != want.MaxPollWait ||
		s.PluginsConfig != want.PluginsConfig || len(s.PluginDirs) != 1 || s.PluginDirs[0] != "plugins" {
		t.Errorf("got %+v\nwant %+v", s, want)
	}

	// A missing default file is fine; a missing explicit one is an error.
	if err := loadConfig(&s, serverDefaults, filepath.Join(dir, "nope.yaml"), false, flags); err != nil {
		t.Errorf("missing default file: %v", err)
	}
	if err := loadConfig(&s, serverDefaults, filepath.Join(dir, "nope.yaml"), true, flags); err == nil {
		t.Error("missing explicit file accepted")
	}
}

func TestAgentLabelsFromFlagsAndEnv(t *testing.T) {
	t.Setenv("ARCADE_LABELS", "env=dev,zone=a")
	flags := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	flags.String("config", "", "")
	addAgentFlags(flags)
	if err := flags.Parse([]string{"--label", "gpu=true", "--label", "env=prod"}); err != nil {
		t.Fatal(err)
	}
	var s agentSettings
	if err := loadConfig(&s, agentDefaults, "", false, flags); err != nil {
		t.Fatal(err)
	}
	// Labels from every source merge; the flag wins on a shared key.
	if len(s.Labels) != 3 || s.Labels["gpu"] != "true" || s.Labels["env"] != "prod" || s.Labels["zone"] != "a" {
		t.Errorf("labels %v", s.Labels)
	}
	if s.MaxJobs != 1 || s.Server != "127.0.0.1:9090" {
		t.Errorf("defaults: %+v", s)
	}
}

// pipeline_limits and mask_min_length are read from the files.
func TestLimitsFromFiles(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(file, []byte("pipeline_limits: {jobs: 5, stages: 2, edges: 7, yaml_bytes: 4096}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	flags := pflag.NewFlagSet("server", pflag.ContinueOnError)
	flags.String("config", "", "")
	addServerFlags(flags)
	var s serverSettings
	if err := loadConfig(&s, serverDefaults, file, true, flags); err != nil {
		t.Fatal(err)
	}
	if l := s.PipelineLimits; l.Jobs != 5 || l.Stages != 2 || l.Edges != 7 || l.YAMLBytes != 4096 {
		t.Errorf("pipeline_limits = %+v", l)
	}
	agentFile := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(agentFile, []byte("mask_min_length: 12\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	aflags := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	aflags.String("config", "", "")
	addAgentFlags(aflags)
	var a agentSettings
	if err := loadConfig(&a, agentDefaults, agentFile, true, aflags); err != nil {
		t.Fatal(err)
	}
	if a.MaskMinLength != 12 {
		t.Errorf("mask_min_length = %d", a.MaskMinLength)
	}
}

// TestAgentContainerSettings: the engine an agent looks for comes from
// container: in the file, ARCADE_CONTAINER_RUNTIME / ARCADE_CONTAINER_HOST,
// --container-runtime / --docker-host, and DOCKER_HOST last.
func TestAgentContainerSettings(t *testing.T) {
	file := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(file, []byte("container:\n  runtime: docker\n  host: unix:///from/file.sock\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	load := func(t *testing.T, path string, args ...string) (runtime, host string) {
		t.Helper()
		cmd := newAgentCmd(&globals{})
		if err := cmd.Flags().Parse(args); err != nil {
			t.Fatal(err)
		}
		cfg, err := agentConfig(cmd, path, "config")
		if err != nil {
			t.Fatal(err)
		}
		return cfg.ContainerRuntime, cfg.DockerHost
	}
	t.Setenv("DOCKER_HOST", "unix:///from/docker-host.sock")
	if rt, h := load(t, os.DevNull); rt != "auto" || h != "unix:///from/docker-host.sock" {
		t.Errorf("defaults: %q %q", rt, h)
	}
	if rt, h := load(t, file); rt != "docker" || h != "unix:///from/file.sock" {
		t.Errorf("file: %q %q", rt, h)
	}
	t.Setenv("ARCADE_CONTAINER_RUNTIME", "none")
	t.Setenv("ARCADE_CONTAINER_HOST", "unix:///from/env.sock")
	if rt, h := load(t, file); rt != "none" || h != "unix:///from/env.sock" {
		t.Errorf("env over file: %q %q", rt, h)
	}
	if rt, h := load(t, file, "--container-runtime", "auto", "--docker-host", "tcp://127.0.0.1:2375"); rt != "auto" || h != "tcp://127.0.0.1:2375" {
		t.Errorf("flags over env: %q %q", rt, h)
	}
}

// TestConfigUnknownKeys: a key of server.yaml or agent.yaml that nothing
// reads stops the command, naming it and the key it resembles; the shipped
// files have none; unknown ARCADE_* variables stay allowed (CI sets its own).
func TestConfigUnknownKeys(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ARCADE_REQUIRE_SOMETHING", "1")
	for _, c := range []struct {
		yaml string
		want string
	}{
		{"notfy:\n  - {name: n, on: [job.failed], plugin: p}\n", "notfy: unknown key; did you mean notify?"},
		{"notify:\n  - {name: n, on: [job.failed], plugn: p}\n", "notify[0].plugn: unknown key; did you mean notify[0].plugin?"},
		{"notify_delivery: {atempts: 2}\n", "notify_delivery.atempts: unknown key; did you mean notify_delivery.attempts?"},
		{"listen: 127.0.0.1:1\nzzz_unrelated: 1\n", "zzz_unrelated: unknown key"},
	} {
		file := filepath.Join(dir, "server.yaml")
		if err := os.WriteFile(file, []byte(c.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		flags := pflag.NewFlagSet("server", pflag.ContinueOnError)
		addServerFlags(flags)
		var s serverSettings
		err := loadConfig(&s, serverDefaults, file, true, flags)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.yaml, err, c.want)
		}
	}
	for _, f := range []struct {
		path string
		out  any
		add  func(*pflag.FlagSet)
	}{
		{"../../conf.d/server.yaml", &serverSettings{}, addServerFlags},
		{"../../conf.d/agent.yaml", &agentSettings{}, addAgentFlags},
	} {
		flags := pflag.NewFlagSet("x", pflag.ContinueOnError)
		f.add(flags)
		if err := loadConfig(f.out, map[string]any{}, f.path, true, flags); err != nil {
			t.Errorf("%s: %v", f.path, err)
		}
	}
}
