package server

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/server/notify"
)

// TestStartWithPluginsNotBuilt: under enforce, a plugin the server needs
// whose module is not built yet (before make plugins) does not stop the
// server: it loads once it appears, and its signature is checked then.
// (A refused one does: cmd/arcade TestServerRefusesToStartWithoutItsPlugins.)
func TestStartWithPluginsNotBuilt(t *testing.T) {
	pub, _, err := host.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "plugins.yaml")
	if err := os.WriteFile(path, []byte("trusted_keys: ["+host.EncodePublicKey(pub)+"]\nrequire_signatures: true\n"+
		"plugins:\n  - {name: fs-store, path: plugins/fs-store.wasm, kind: storage}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{PluginsConfig: path, ArtifactStore: "fs-store",
		Notify: notify.Config{Rules: []notify.Rule{{Name: "runs", Plugin: "log-notify"}}}}
	var logs bytes.Buffer
	if err := checkDependedOnPlugins(cfg, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatalf("a module not built yet stops the server: %v", err)
	}
	if logs.Len() != 0 {
		t.Errorf("logged:\n%s", logs.String())
	}
}
