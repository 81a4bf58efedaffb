package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/go-arcade/arcade/internal/dockertest"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// ociCommands are the README's and --help's plugin push commands:
// TestPluginOCI runs them as written, against a registry on loopback
// (127.0.0.1:5000 in the text is its address).
var ociCommands = []string{
	"arcade plugin push --plain-http --key plugin.key steptool.wasm 127.0.0.1:5000/arcade/steptool:stable",
}

// TestPluginOCI pushes a plugin built from source to a real registry with
// arcade plugin push, has a server load it from oci:// with the registry
// credential of a stored secret (registry_auth; the load fails naming the
// secret until arcade secret set creates it), runs a job with it on an
// agent (which fetches the module from the server), rotates the secret to a
// docker config, pushes a new version to the same tag and sees the server
// swap to it, then pushes an unsigned and a wrongly signed version and sees
// each refused while the last good version keeps serving. The registry
// password shows in no output, log, event or file.
func TestPluginOCI(t *testing.T) {
	reg := dockertest.StartRegistry(t, dockertest.RegistryOptions{User: "pusher", Password: "s3cret-registry"})
	build := t.TempDir()
	v1, v2 := filepath.Join(build, "v1", "steptool.wasm"), filepath.Join(build, "v2", "steptool.wasm")
	for _, f := range []string{v1, v2} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	parallelDone(
		func() { buildPlugin(t, "./testdata/steptool", v1) },
		func() { buildPlugin(t, "./testdata/steptool", v2, "-X main.version=2.0.0") },
	)
	if t.Failed() {
		return
	}
	dir := t.TempDir()
	// Registry credentials as docker login writes them, in a config the
	// CLI and the server read.
	dockerCfg := filepath.Join(dir, "docker", "config.json")
	if err := os.MkdirAll(filepath.Dir(dockerCfg), 0o700); err != nil {
		t.Fatal(err)
	}
	auth := base64.StdEncoding.EncodeToString([]byte(reg.User + ":" + reg.Password))
	if err := os.WriteFile(dockerCfg, []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.Addr, auth)), 0o600); err != nil {
		t.Fatal(err)
	}
	arcade := func(wd string, args ...string) (string, error) {
		cmd := exec.Command(arcadeBin, args...)
		cmd.Dir = wd
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Dir(dockerCfg))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	pub, err := arcade(dir, "plugin", "keygen", "--out", "plugin.key")
	if err != nil {
		t.Fatalf("keygen: %v\n%s", err, pub)
	}
	if out, err := arcade(dir, "plugin", "keygen", "--out", "other.key"); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	push := func(module string, args ...string) string {
		t.Helper()
		wd := filepath.Dir(module)
		for _, k := range []string{"plugin.key", "other.key"} {
			_ = os.Symlink(filepath.Join(dir, k), filepath.Join(wd, k))
		}
		line := strings.ReplaceAll(ociCommands[0], "127.0.0.1:5000", reg.Addr)
		fields := strings.Fields(line)[1:]
		if args != nil {
			fields = append([]string{"plugin", "push", "--plain-http"}, append(args, "steptool.wasm", reg.Addr+"/arcade/steptool:stable")...)
		}
		out, err := arcade(wd, fields...)
		if err != nil {
			t.Fatalf("arcade %s: %v\n%s", strings.Join(fields, " "), err, out)
		}
		if strings.Contains(out, reg.Password) || strings.Contains(out, auth) {
			t.Fatalf("push printed the registry credential:\n%s", out)
		}
		return out
	}

	// Without the credential the registry refuses the push.
	cmd := exec.Command(arcadeBin, "plugin", "push", "--plain-http", v1, reg.Addr+"/arcade/steptool:stable")
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "credential not found") {
		t.Fatalf("push without credentials: %v\n%s", err, out)
	}
	if out := push(v1); !strings.Contains(out, "signed by "+strings.TrimSpace(pub)) {
		t.Fatalf("push v1: %s", out)
	}

	// The server has no docker config (the file named is missing): its
	// only credential is the stored secret registry_auth names.
	cfgPath := filepath.Join(dir, "plugins.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`trusted_keys: [%s]
require_signatures: true
oci:
  plain_http: true
  docker_config: %s
  poll_interval: 1s
plugins:
  - name: steptool
    source: oci://%s/arcade/steptool:stable
    registry_auth: OCI_REGISTRY
    kind: ci
    grants: {timeout: 10s, memory_limit_mib: 32}
`, strings.TrimSpace(pub), filepath.Join(dir, "no-docker", "config.json"), reg.Addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, "sqlite://"+filepath.Join(dir, "arcade.db"), "--plugins-config", cfgPath)
	events := c.watchEvents(t)
	c.startAgent("worker", 1)
	plugins := pluginv1.NewPluginServiceClient(c.conn)
	ctx := context.Background()
	info := func() *pluginv1.PluginInfo {
		r, err := plugins.GetPlugin(ctx, &pluginv1.GetPluginRequest{Name: "steptool"})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetPlugin()
	}
	// Until the secret exists the load fails, naming it.
	if p := info(); p.GetState() != pluginv1.PluginState_PLUGIN_STATE_FAILED ||
		!strings.Contains(p.GetLastError(), "plugin steptool: registry credential: registry_auth: secret OCI_REGISTRY: not found") {
		t.Fatalf("steptool with its registry secret missing: %s: %s", p.GetState(), p.GetLastError())
	}
	// Set, the server loads the plugins that pull with it.
	if out, err := c.cliIn(reg.User+":"+reg.Password, "secret", "set", "OCI_REGISTRY"); err != nil {
		t.Fatalf("secret set: %v\n%s", err, out)
	}
	c.waitFor("steptool pulled with the secret", func() bool {
		return info().GetState() == pluginv1.PluginState_PLUGIN_STATE_LOADED
	})
	runStep := func(want string) {
		t.Helper()
		j := c.create(&jobv1.CreateJobRequest{Name: "oci", Steps: []*agentv1.Step{{Uses: "steptool"}}})
		done := c.waitStatus(j.GetId(), agentv1.JobStatus_JOB_STATUS_SUCCESS, agentv1.JobStatus_JOB_STATUS_FAILED)
		text := logText(c.logOf(j.GetId(), 0))
		if done.GetStatus() != agentv1.JobStatus_JOB_STATUS_SUCCESS || !strings.Contains(text, want) {
			t.Fatalf("job with steptool: %s %s, want %q in its log:\n%s", done.GetStatus(), done.GetMessage(), want, text)
		}
	}
	if p := info(); p.GetState() != pluginv1.PluginState_PLUGIN_STATE_LOADED || p.GetMetadata().GetVersion() != "1.0.0" {
		t.Fatalf("steptool from oci:// is %s %s: %s", p.GetState(), p.GetMetadata().GetVersion(), p.GetLastError())
	}
	runStep("steptool 1.0.0")

	// The secret rotated to a docker config (the one docker login wrote):
	// the plugin loads again with it, and the next pull, of a new version
	// pushed to the same tag, uses it.
	if out, err := c.cliIn("", "secret", "set", "OCI_REGISTRY", "--from-file", dockerCfg); err != nil || !strings.Contains(out, "version 2") {
		t.Fatalf("secret set --from-file: %v\n%s", err, out)
	}
	push(v2)
	c.waitFor("steptool 2.0.0 from the moved tag", func() bool { return info().GetMetadata().GetVersion() == "2.0.0" })
	runStep("steptool 2.0.0")
	v2sum := info().GetSha256()
	if b, _ := os.ReadFile(v2); fmt.Sprintf("%x", sha256.Sum256(b)) != v2sum {
		t.Fatalf("the server serves sha256 %s, not the pushed module's", v2sum)
	}

	// An unsigned version, then one signed by an untrusted key: each is
	// refused, and 2.0.0 keeps serving.
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{}, "the artifact at oci://"},
		{[]string{"--key", "other.key"}, "signature not by a trusted key"},
	} {
		push(v1, bad.args...)
		c.waitFor("the refusal of "+bad.want, func() bool { return strings.Contains(info().GetLastError(), bad.want) })
		// The state is the last load's (failed); 2.0.0 still serves.
		if p := info(); p.GetMetadata().GetVersion() != "2.0.0" || p.GetSha256() != v2sum {
			t.Fatalf("after a refused version steptool serves %s %s (%s), want 2.0.0 (%s)", p.GetMetadata().GetVersion(), p.GetSha256(), p.GetLastError(), v2sum)
		}
		runStep("steptool 2.0.0")
	}

	// The registry password is in no CLI output, event, log or file.
	for _, args := range [][]string{{"plugin", "list"}, {"plugin", "info", "steptool"}, {"secret", "list"}} {
		out := c.mustCLI(t, args...)
		if strings.Contains(out, reg.Password) || strings.Contains(out, auth) {
			t.Errorf("arcade %s shows the registry credential:\n%s", strings.Join(args, " "), out)
		}
		if args[1] == "info" && !strings.Contains(out, "2.0.0") {
			t.Errorf("arcade plugin info steptool:\n%s", out)
		}
	}
	if text := events.text(); strings.Contains(text, reg.Password) || strings.Contains(text, auth) {
		t.Errorf("an event shows the registry credential")
	}
	c.server.stop(syscall.SIGTERM)
	for _, d := range []string{dir, c.dataDir, filepath.Dir(c.server.logPath)} {
		err := filepath.Walk(d, func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() {
				return err
			}
			if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), reg.Password) {
				t.Errorf("the registry password is in %s", p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := os.ReadFile(c.server.logPath); !strings.Contains(string(b), "plugin pulled") {
		t.Errorf("the server log says nothing of the pulls: is it the right file?")
	}
}
