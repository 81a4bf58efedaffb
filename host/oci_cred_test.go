package host

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/go-arcade/arcade/host/pluginoci"
	"github.com/go-arcade/arcade/internal/dockertest"
)

// lockedBuffer keeps what a logger writes, for a test to read.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestOCIRegistryAuth pulls from a registry behind htpasswd with the
// credential of a stored secret (registry_auth), and no docker config: a
// missing secret fails the load naming it and the plugin; set, the plugin
// loads; a wrong credential, then a deleted secret, leave the running
// version serving while the tag moves; the secret rotated to a docker
// config picks the moved tag up. The password shows nowhere.
func TestOCIRegistryAuth(t *testing.T) {
	const password = "reg-Pa55-Word-7f3c"
	reg := dockertest.StartRegistry(t, dockertest.RegistryOptions{User: "puller", Password: password})
	dir := t.TempDir()
	noDocker := dir + "/none.json" // no docker config: the secret is the only credential
	ref := reg.Addr + "/arcade/kitchen:stable"
	push := func(path string) {
		t.Helper()
		module, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		o := pluginoci.Options{PlainHTTP: true, DockerConfig: noDocker, Credential: auth.Credential{Username: reg.User, Password: reg.Password}}
		if _, err := pluginoci.Push(context.Background(), ref, module, nil, o); err != nil {
			t.Fatal(err)
		}
	}
	push(testWasm.kitchen)

	sec := &fakeSecrets{vals: map[string]string{}}
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := NewManager(logger, WithCacheDir(testWasm.cache), WithDebounce(40*time.Millisecond), WithSecrets(sec.resolve))
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	var events []Event
	var evMu sync.Mutex
	m.Subscribe(func(e Event) {
		evMu.Lock()
		events = append(events, e)
		evMu.Unlock()
	})
	cfg := Config{OCI: OCIConfig{PlainHTTP: true, DockerConfig: noDocker, PollInterval: Duration(time.Second)},
		Plugins: []Spec{{Name: "kitchen", Source: pluginoci.Scheme + ref, Kind: "custom", RegistryAuth: "REG_AUTH"}}}
	if err := m.LoadPluginsFromConfig(writeConfig(t, dir, cfg)); err != nil {
		t.Fatal(err)
	}
	setSecret := func(v string) {
		sec.mu.Lock()
		defer sec.mu.Unlock()
		if v == "" {
			delete(sec.vals, "REG_AUTH")
			return
		}
		sec.vals["REG_AUTH"] = v
	}
	version := func() string {
		p, err := m.Get("kitchen")
		if err != nil {
			return ""
		}
		return p.Info().GetMetadata().GetVersion()
	}
	lastError := func() string {
		p, _ := m.Get("kitchen")
		if p == nil {
			return ""
		}
		return p.Info().GetLastError()
	}
	ctx := context.Background()

	// No such secret yet: the load fails, naming the plugin and the secret.
	err := m.Init(ctx)
	if !errors.Is(err, ErrRegistryAuth) || !strings.Contains(err.Error(), "plugin kitchen") || !strings.Contains(err.Error(), "secret REG_AUTH: not found") {
		t.Fatalf("load with the secret missing: %v", err)
	}
	// The server loads again the plugins that name a secret set or rotated.
	if users := m.SecretUsers("REG_AUTH"); len(users) != 1 || users[0] != "kitchen" {
		t.Errorf("SecretUsers(REG_AUTH) = %v", users)
	}
	// Set: the next load pulls with it.
	setSecret(reg.User + ":" + password)
	if err := m.Reload(ctx, "kitchen"); err != nil {
		t.Fatal(err)
	}
	if v := version(); v != "1.0.0" {
		t.Fatalf("kitchen pulled with registry_auth is %q", v)
	}

	// A wrong credential: a reload is refused by the registry, and a moved
	// tag is not followed; 1.0.0 serves.
	setSecret(reg.User + ":not-the-password")
	err = m.Reload(ctx, "kitchen")
	if !errors.Is(err, ErrRegistryAuth) || !strings.Contains(err.Error(), "the registry refused the credential of secret REG_AUTH") {
		t.Fatalf("reload with a wrong credential: %v", err)
	}
	push(testWasm.kitchen2)
	// logged reports whether a line logged after the mark holds each of
	// words.
	logged := func(mark int, words ...string) bool {
		for _, l := range strings.Split(logs.String()[mark:], "\n") {
			has := true
			for _, w := range words {
				has = has && strings.Contains(l, w)
			}
			if has {
				return true
			}
		}
		return false
	}
	mark := len(logs.String())
	waitUntil(t, "a poll refused by the registry", func() bool {
		return logged(mark, "plugin tag not resolved; the running version stays", "401")
	})
	if v := version(); v != "1.0.0" {
		t.Fatalf("after a refused poll kitchen is %q, want 1.0.0 serving", v)
	}
	// Deleted: the poll says so, and 1.0.0 still serves.
	mark = len(logs.String())
	setSecret("")
	waitUntil(t, "a poll with the secret missing", func() bool {
		return logged(mark, "plugin tag not resolved; the running version stays", "plugin kitchen", "secret REG_AUTH: not found")
	})
	if v := version(); v != "1.0.0" {
		t.Fatalf("after a poll with no secret kitchen is %q, want 1.0.0 serving", v)
	}
	// Rotated to a docker config holding the right credential: the next
	// poll follows the tag to 2.0.0.
	b64 := base64.StdEncoding.EncodeToString([]byte(reg.User + ":" + password))
	setSecret(fmt.Sprintf(`{"auths": {"http://%s": {"auth": %q}}}`, reg.Addr, b64))
	waitUntil(t, "kitchen 2.0.0 pulled with the rotated secret", func() bool { return version() == "2.0.0" })

	// A secret that is no credential for this registry is refused naming it.
	setSecret(`{"auths": {"ghcr.io": {"auth": "` + b64 + `"}}}`)
	err = m.Reload(ctx, "kitchen")
	if !errors.Is(err, ErrRegistryAuth) || !strings.Contains(err.Error(), "secret REG_AUTH: the docker config has no entry for "+reg.Addr) {
		t.Fatalf("reload with a config for another registry: %v", err)
	}

	evMu.Lock()
	defer evMu.Unlock()
	seen := logs.String() + lastError()
	for _, e := range events {
		seen += fmt.Sprint(e, e.Err)
	}
	if strings.Contains(seen, password) || strings.Contains(seen, b64) || strings.Contains(seen, "not-the-password") {
		t.Errorf("the registry credential shows in the logs, events or last error")
	}
}

// TestOCIRegistryAuthRefused: registry_auth is for oci:// entries, names a
// secret, and needs a host that keeps secrets.
func TestOCIRegistryAuthRefused(t *testing.T) {
	t.Parallel()
	s := kitchen("x")
	s.applyLimits(Limits{Timeout: Duration(time.Second), MemoryLimitMiB: 64, MaxInstances: 1})
	s.RegistryAuth = "REG_AUTH"
	if err := s.validate(); err == nil || !strings.Contains(err.Error(), "registry_auth: only for an entry with an oci:// source") {
		t.Errorf("registry_auth with path: %v", err)
	}
	s = Spec{Name: "x", Source: "oci://127.0.0.1:1/a/b:v1", RegistryAuth: "not a name", FailurePolicy: "fail_closed", Grants: Grants{Limits: Limits{MemoryLimitMiB: 64}}}
	if err := s.validate(); err == nil || !strings.Contains(err.Error(), `registry_auth: "not a name" is not a secret name`) {
		t.Errorf("registry_auth not a name: %v", err)
	}
	s.RegistryAuth = "REG_AUTH"
	if err := s.validate(); err != nil {
		t.Errorf("valid registry_auth refused: %v", err)
	}
	// Refused before any pull: the registry (port 1) is never asked.
	wantRefused(t, ErrBadConfig, "registry_auth: this host keeps no secrets", s)
}
