package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/host"
)

// TestEnforceEditKeepsTheArtifactStore: on a server whose artifact_store is
// the unsigned fs-store, an edit of the watched plugins.yaml that turns
// require_signatures on is refused: a plugin.failed event on the file says
// config_rejected, naming fs-store and artifact_store, and artifacts are
// still stored.
func TestEnforceEditKeepsTheArtifactStore(t *testing.T) {
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	if err := os.MkdirAll(storeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pub, _, err := host.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "plugins.yaml")
	write := func(policy string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`trusted_keys: [%s]
%s
plugins:
  - name: fs-store
    path: %s
    kind: storage
    grants:
      allowed_paths:
        - {host: %s, guest: /store, mode: rw}
      memory_limit_mib: 256
`, host.EncodePublicKey(pub), policy, fsStorePlugin(t), storeDir)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("signature_mode: warn")
	httpAddr := freeAddr(t)
	c := newCluster(t, "sqlite://"+filepath.Join(dir, "arcade.db"), "--plugins-config", cfg, "--artifact-store", "fs-store", "--http-listen", httpAddr)
	c.startAgent("builder", 1)

	// Before the edit: the API, the CLI and the dashboard say what needs
	// fs-store, and that enforce would refuse it.
	info, err := pluginv1.NewPluginServiceClient(c.conn).GetPlugin(context.Background(), &pluginv1.GetPluginRequest{Name: "fs-store"})
	if err != nil {
		t.Fatal(err)
	}
	if p := info.GetPlugin(); !slices.Equal(p.GetNeededBy(), []string{"artifact_store"}) || !strings.HasPrefix(p.GetWarning(), "signature_mode warn: enforce would refuse it: neither plugins.yaml nor ") {
		t.Errorf("fs-store: needed by %q, warning %q", p.GetNeededBy(), p.GetWarning())
	}
	out, err := c.cli("plugin", "info", "fs-store")
	if err != nil || !regexp.MustCompile(`(?m)^Needed by:\s+artifact_store$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^Warning:\s+.*enforce would refuse it`).MatchString(out) {
		t.Errorf("plugin info fs-store: %v\n%s", err, out)
	}
	// The dashboard, where a browser is (CI requires one).
	if chromiumPath() != "" || os.Getenv("ARCADE_REQUIRE_BROWSER") == "1" {
		b := newBrowser(t, needChromium(t), "http://"+httpAddr)
		b.open("/login")
		b.waitJS("the login page", `document.querySelector('#token')`)
		b.run("log in", chromedp.SendKeys(chromedp.CSS("#token"), apiToken), chromedp.Click(chromedp.CSS(`button[type=submit]`)))
		b.waitJS("logged in", `location.pathname !== '/login'`)
		b.open("/plugins")
		b.waitJS("fs-store's dependent and warning shown", `(() => {
			const row = document.querySelector('tr[data-plugin=fs-store]');
			if (!row) return false;
			const need = row.querySelector('[data-testid=plugin-needed-by]'), warn = row.querySelector('[data-testid=plugin-warning]');
			return need && need.textContent === 'needed by artifact_store' && warn && warn.textContent.includes('enforce would refuse it');
		})()`)
		b.screenshot("plugins-needed-by")
	}

	write("require_signatures: true")
	var rejected *jobv1.Event
	for deadline := time.Now().Add(30 * time.Second); rejected == nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no plugin.failed event for the enforce edit within 30s")
		}
		events, err := pastEvents(t, c, &jobv1.StreamEventsRequest{Last: 100, ResourceType: "plugin"})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if e.GetResourceId() == cfg && strings.HasPrefix(e.GetMessage(), "config_rejected") {
				rejected = e
			}
		}
	}
	for _, want := range []string{"plugin fs-store is needed by artifact_store", "unsigned", "the running configuration stays"} {
		if !strings.Contains(rejected.GetMessage(), want) {
			t.Errorf("the rejection %q lacks %q", rejected.GetMessage(), want)
		}
	}
	if rejected.GetType() != jobv1.EventType_EVENT_TYPE_PLUGIN_FAILED {
		t.Errorf("the rejection is a %v event", rejected.GetType())
	}

	j := c.create(&jobv1.CreateJobRequest{Name: "build", Commands: []string{"echo built > out.txt"},
		Artifacts: &agentv1.ArtifactConfig{Paths: []string{"out.txt"}}})
	if got := c.waitStatus(j.GetId(), success, failed); got.GetStatus() != success {
		t.Fatalf("build: %v %s", got.GetStatus(), got.GetMessage())
	}
	if arts := artifactsOf(t, c, j.GetId()); len(arts) != 1 || !arts[0].GetStored() {
		t.Fatalf("after the refused edit the artifact store keeps nothing: %v", arts)
	}
}
