package host

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

type fakeSecrets struct {
	mu   sync.Mutex
	vals map[string]string
}

func (f *fakeSecrets) resolve(_ context.Context, names []string) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for _, n := range names {
		v, ok := f.vals[n]
		if !ok {
			return nil, fmt.Errorf("secret %s: not found", n)
		}
		out[n] = v
	}
	return out, nil
}

// TestConfigFromSecrets: plugins.yaml takes config values from stored
// secrets; the plugin sees them, the module's description keeps them apart
// (sent to agents with jobs only), a reload picks a rotated value up, and a
// missing secret refuses the load naming it.
func TestConfigFromSecrets(t *testing.T) {
	t.Parallel()
	sec := &fakeSecrets{vals: map[string]string{"SLACK_TOKEN": "xoxb-1"}}
	m := newTestManager(t, WithSecrets(sec.resolve))
	spec := kitchen("notifier")
	spec.Config = map[string]string{"channel": "#builds"}
	spec.Secrets = map[string]string{"token": "SLACK_TOKEN"}
	path := writeConfig(t, t.TempDir(), Config{Plugins: []Spec{spec}})
	if err := m.LoadPluginsFromConfig(path); err != nil {
		t.Fatal(err)
	}
	if err := m.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	value := func() string {
		t.Helper()
		resp, err := execute(ctx, t, m, "notifier", "config", map[string]any{"key": "token"})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetResult().GetFields()["value"].GetStringValue()
	}
	if v := value(); v != "xoxb-1" {
		t.Fatalf("token = %q", v)
	}
	p, _ := m.Get("notifier")
	mod, err := p.Module()
	if err != nil {
		t.Fatal(err)
	}
	if _, leaked := mod.Config["token"]; leaked || mod.Config["channel"] != "#builds" || mod.SecretConfig["token"] != "xoxb-1" {
		t.Errorf("module config %v, secret config %v", mod.Config, mod.SecretConfig)
	}
	if users := m.SecretUsers("SLACK_TOKEN"); len(users) != 1 || users[0] != "notifier" {
		t.Errorf("SecretUsers = %v", users)
	}
	sec.mu.Lock()
	sec.vals["SLACK_TOKEN"] = "xoxb-2"
	sec.mu.Unlock()
	if err := m.Reload(ctx, "notifier"); err != nil {
		t.Fatal(err)
	}
	if v := value(); v != "xoxb-2" {
		t.Errorf("after rotation and reload: %q", v)
	}
	// Deleted: the reload is refused, the loaded version keeps serving.
	sec.mu.Lock()
	delete(sec.vals, "SLACK_TOKEN")
	sec.mu.Unlock()
	err = m.Reload(ctx, "notifier")
	if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "bad config: secrets: secret SLACK_TOKEN: not found") {
		t.Errorf("reload with the secret gone: %v, want a bad config naming the secret", err)
	}
	if v := value(); v != "xoxb-2" {
		t.Errorf("the old version stopped serving: %q", v)
	}
}

func TestConfigFromSecretsRefused(t *testing.T) {
	t.Parallel()
	spec := kitchen("lonely")
	spec.Secrets = map[string]string{"token": "TOKEN"}
	wantRefused(t, ErrBadConfig, "secrets: this host keeps no secrets", spec)

	for _, bad := range []map[string]string{{"token": "not a name"}, {"channel": "TOKEN"}, {"": "TOKEN"}} {
		s := kitchen("x")
		s.Config = map[string]string{"channel": "#b"}
		s.Secrets = bad
		if err := s.validate(); err == nil || !strings.Contains(err.Error(), "secrets:") {
			t.Errorf("secrets %v: %v", bad, err)
		}
	}
}
