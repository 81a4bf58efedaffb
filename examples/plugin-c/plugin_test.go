package pluginc_test

import (
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/host/pdktest"
	"github.com/go-arcade/arcade/pdk"
)

func TestMain(m *testing.M) { pdktest.Main(m) }

// build compiles src/slugify.c as the Makefile does, into a temporary folder.
// Without clang and wasi-libc the test skips, unless
// ARCADE_REQUIRE_FOREIGN=1.
func build(t *testing.T) string {
	return pdktest.BuildC(t, filepath.Join("src", "slugify.c"), filepath.Join("..", "..", "pdk", "c"))
}

type records struct {
	mu   sync.Mutex
	msgs []string
}

func (r *records) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, string(p))
	return len(p), nil
}

func (r *records) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.msgs, "")
}

// TestSlugifyC loads the C plugin under Arcade's host, like any plugin.
func TestSlugifyC(t *testing.T) {
	wasm := build(t)
	var logs records
	p := pdktest.Load(t, wasm, pdktest.Options{Kind: "custom", Config: map[string]string{"separator": "_"},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if md := p.Metadata(); md.GetName() != "slugify-c" || md.GetVersion() != "1.0.0" {
		t.Fatalf("metadata %v", md)
	}
	var resp pdk.ExecuteResponse
	err := p.Call("execute", pdk.ExecuteRequest{Action: "slugify", Params: pdk.Params{"text": `Hello, "World"! Ünïcode 2026`}}, &resp)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != pdk.StatusSuccess || resp.Result["slug"] != "hello_world_n_code_2026" {
		t.Fatalf("got %+v", resp)
	}
	if !strings.Contains(logs.String(), "slugified into hello_world_n_code_2026") {
		t.Errorf("log line missing:\n%s", logs.String())
	}
	err = p.Call("execute", pdk.ExecuteRequest{Action: "shout"}, nil)
	var he *host.Error
	if !errors.As(err, &he) || he.Reason != host.ErrPluginFailed || !he.Permanent() || !strings.Contains(err.Error(), "slugify-c: unknown action (want slugify)") {
		t.Fatalf("unknown action: %#v, want a permanent failure", err)
	}
	// Quotes and control characters in the answer are escaped by the header.
	p2 := pdktest.Load(t, wasm, pdktest.Options{Kind: "custom", Config: map[string]string{"separator": "\"\n"}})
	if err := p2.Call("execute", pdk.ExecuteRequest{Action: "slugify", Params: pdk.Params{"text": "a b"}}, &resp); err != nil || resp.Result["slug"] != "a\"\nb" {
		t.Fatalf("escaped separator: %v %+v", err, resp)
	}
	// Declared inputs: a misspelt config key is refused at load.
	if _, err := pdktest.LoadErr(t, wasm, pdktest.Options{Kind: "custom", Config: map[string]string{"seperator": "_"}}); !errors.Is(err, host.ErrBadConfig) ||
		!strings.Contains(err.Error(), "seperator: unknown config key; did you mean separator?") {
		t.Fatalf("misspelt config: %v", err)
	}
	// Many calls: the module's own allocator frees what each call takes.
	for i := range 500 {
		if err := p.Call("execute", pdk.ExecuteRequest{Action: "slugify", Params: pdk.Params{"text": strings.Repeat("Ab ", 100)}}, nil); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}
