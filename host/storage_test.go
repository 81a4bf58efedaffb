package host

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// TestLoadChecksStorageFeatures: a storage plugin that claims a feature
// must declare (hence export) its functions, and sane part bounds; the
// face reports what it claims.
func TestLoadChecksStorageFeatures(t *testing.T) {
	t.Parallel()
	storage := func(name, features, functions string) Spec {
		s := kitchen(name)
		s.Kind = "storage"
		s.Config = map[string]string{"kind": "KIND_STORAGE", "storage": features}
		if functions != "" {
			s.Config["functions"] = functions
		}
		return s
	}
	t.Run("presign without its functions", func(t *testing.T) {
		wantRefused(t, ErrMissingFunction, "plugin p refused: missing function: storage feature presign needs function presign",
			storage("p", `{"presign":true}`, ""))
	})
	t.Run("multipart without its functions", func(t *testing.T) {
		wantRefused(t, ErrMissingFunction, "storage feature multipart needs function upload_begin",
			storage("m", `{"multipart":true,"minPartBytes":"5","maxPartBytes":"10"}`, ""))
	})
	t.Run("declared but not exported", func(t *testing.T) {
		wantRefused(t, ErrMissingFunction, "module declares presign but does not export it",
			storage("e", `{"presign":true}`, "save,load,delete,list,presign,stat"))
	})
	t.Run("features on another kind", func(t *testing.T) {
		s := kitchen("c")
		s.Config = map[string]string{"storage": `{"rangedLoad":true}`}
		wantRefused(t, ErrBadMetadata, "a custom plugin declares storage features", s)
	})
	m := mustLoad(t, storage("ranged", `{"rangedLoad":true}`, ""))
	f, err := m.GetStoragePlugin("ranged")
	if err != nil {
		t.Fatal(err)
	}
	if !f.Features().GetRangedLoad() || f.Features().GetPresign() {
		t.Errorf("features %v", f.Features())
	}
}

// TestConfigEnv: config_env values reach the plugin from the environment
// at load, are not part of what describes or ships the plugin, and a
// missing variable refuses the load naming it.
func TestConfigEnv(t *testing.T) {
	t.Setenv("ARCADE_TEST_CONFIG_ENV", "s3cr3t-value")
	spec := kitchen("env")
	spec.ConfigEnv = map[string]string{"token": "ARCADE_TEST_CONFIG_ENV"}
	m := mustLoad(t, spec)
	p, err := m.Get("env")
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Call(context.Background(), "execute", []byte(`{"action":"config","params":{"key":"token"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var resp pluginv1.ExecuteResponse
	if err := unmarshalOpts.Unmarshal(out, &resp); err != nil || resp.GetResult().AsMap()["value"] != "s3cr3t-value" {
		t.Fatalf("the plugin read %s (%v)", out, err)
	}
	mod, err := p.Module()
	if err != nil {
		t.Fatal(err)
	}
	info, _ := json.Marshal(p.Info())
	if _, ok := mod.Config["token"]; ok || strings.Contains(string(info), "s3cr3t") {
		t.Errorf("the value is in what describes the plugin: %v %s", mod.Config, info)
	}

	os.Unsetenv("ARCADE_TEST_CONFIG_ENV")
	missing := kitchen("missing")
	missing.ConfigEnv = map[string]string{"token": "ARCADE_TEST_CONFIG_ENV"}
	wantRefused(t, ErrConfig, "config_env: token: environment variable ARCADE_TEST_CONFIG_ENV is not set", missing)

	for _, tc := range []struct{ yaml, want string }{
		{`plugins: [{name: a, path: a.wasm, config_env: {k: "NOT-A NAME"}}]`, "is not an environment variable name"},
		{`plugins: [{name: a, path: a.wasm, config: {k: v}, config_env: {k: K}}]`, "k is also set in config"},
	} {
		if _, err := ParseConfig([]byte(tc.yaml), "/"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
