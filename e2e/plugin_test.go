package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// TestServerServesPlugins starts a server with a plugins file, uses the
// plugin commands of the CLI, survives a plugin that loops, and follows an
// edit of the plugins file without a restart.
func TestServerServesPlugins(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "kitchen.wasm")
	buildPlugin(t, "../host/testdata/kitchen", wasm)
	cfgPath := filepath.Join(dir, "plugins.yaml")
	writeConfig := func(enabled bool) {
		cfg := fmt.Sprintf(`plugins:
  - name: kitchen
    path: %s
    kind: custom
    enabled: %v
    grants:
      timeout: 500ms
      memory_limit_mib: 32
      max_instances: 2
`, wasm, enabled)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(true)

	c := &cluster{t: t, dsn: "sqlite://" + filepath.Join(dir, "arcade.db"), dataDir: filepath.Join(dir, "data"), addr: freeAddr(t), agents: map[string]*proc{}}
	c.server = start(t, "server", "server", "--listen", c.addr, "--db", c.dsn, "--data-dir", c.dataDir,
		"--config", os.DevNull, "--plugins-config", cfgPath, "--plugin-dirs", filepath.Join(dir, "drop"))
	c.waitHealthy()
	c.waitPluginsLoaded()

	cli := c.cli
	out, err := cli("plugin", "list")
	if err != nil || !strings.Contains(out, "kitchen") || !strings.Contains(out, "custom") || !strings.Contains(out, "loaded") {
		t.Fatalf("arcade plugin list: %v\n%s", err, out)
	}
	out, err = cli("plugin", "info", "kitchen")
	if err != nil || !regexp.MustCompile(`(?m)^Version:\s+1\.0\.0$`).MatchString(out) || !regexp.MustCompile(`(?m)^State:\s+loaded$`).MatchString(out) || strings.Contains(out, "{") {
		t.Errorf("arcade plugin info (a table):\n%v\n%s", err, out)
	}
	out, err = cli("plugin", "info", "kitchen", "-o", "json")
	if err != nil || !strings.Contains(out, `"version": "1.0.0"`) {
		t.Errorf("arcade plugin info -o json: %v\n%s", err, out)
	}
	out, err = cli("plugin", "call", "kitchen", "execute", "--input", `{"action":"echo","params":{"greeting":"hi"}}`)
	if err != nil || !strings.Contains(out, `"greeting": "hi"`) {
		t.Errorf("arcade plugin call: %v\n%s", err, out)
	}
	if out, err := cli("plugin", "call", "nope", "execute"); err == nil || !strings.Contains(out, "plugin nope") || strings.Contains(out, "rpc error") {
		t.Errorf("call of an unknown plugin: %v\n%s", err, out)
	}

	// A call that loops is stopped at the plugin's timeout; the next call works.
	conn := c.dialAPI()
	plugins := pluginv1.NewPluginServiceClient(conn)
	ctx := context.Background()
	_, err = plugins.CallPlugin(ctx, &pluginv1.CallPluginRequest{Name: "kitchen", Function: "execute", InputJson: `{"action":"spin","params":{"ms":"60000"}}`})
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "timed out after 500ms") {
		t.Errorf("looping call: %v, want DeadlineExceeded naming the timeout", err)
	}
	resp, err := plugins.CallPlugin(ctx, &pluginv1.CallPluginRequest{Name: "kitchen", Function: "execute", InputJson: `{"action":"echo"}`})
	if err != nil || !strings.Contains(resp.GetOutputJson(), "1.0.0") {
		t.Errorf("call after the loop: %v %v", resp, err)
	}
	if _, err := plugins.CallPlugin(ctx, &pluginv1.CallPluginRequest{Name: "kitchen", Function: "deploy"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("undeclared function: %v, want InvalidArgument", err)
	}

	// Disabling the plugin in the watched file unloads it.
	writeConfig(false)
	c.waitFor("kitchen to be disabled", func() bool {
		r, err := plugins.GetPlugin(ctx, &pluginv1.GetPluginRequest{Name: "kitchen"})
		return (err == nil && r.GetPlugin().GetState() == pluginv1.PluginState_PLUGIN_STATE_DISABLED) || status.Code(err) == codes.NotFound
	})
	if _, err := plugins.CallPlugin(ctx, &pluginv1.CallPluginRequest{Name: "kitchen", Function: "execute", InputJson: `{"action":"echo"}`}); err == nil {
		t.Error("a disabled plugin still answers")
	}
	// A disabled plugin is listed as such, with the kind its entry declares.
	out, err = cli("plugin", "list")
	if err != nil || !regexp.MustCompile(`kitchen\s+custom\s+-\s+disabled`).MatchString(out) {
		t.Errorf("arcade plugin list with kitchen disabled: %v\n%s", err, out)
	}
}
