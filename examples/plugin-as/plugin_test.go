package pluginas_test

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/host/pdktest"
	"github.com/go-arcade/arcade/pdk"
)

func TestMain(m *testing.M) { pdktest.Main(m) }

// build compiles assembly/index.ts with asc as package.json's build script
// does, into a temporary folder. It needs node and `npm ci --prefix
// examples/plugin-as`; without them the test skips, unless
// ARCADE_REQUIRE_FOREIGN=1.
func build(t *testing.T) string { return pdktest.BuildAssemblyScript(t, ".") }

type records struct {
	mu sync.Mutex
	b  strings.Builder
}

func (r *records) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.b.Write(p)
}

func (r *records) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.b.String()
}

// TestGreetAS loads the AssemblyScript plugin under Arcade's host, like any
// plugin: its metadata, an action, its config, a log line, a permanent
// error, declared config, and many calls on one instance.
func TestGreetAS(t *testing.T) {
	wasm := build(t)
	var logs records
	p := pdktest.Load(t, wasm, pdktest.Options{Kind: "custom", Config: map[string]string{"greeting": "hi"},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if md := p.Metadata(); md.GetName() != "greet-as" || md.GetVersion() != "1.0.0" || len(md.GetParams()) != 2 {
		t.Fatalf("metadata %v", md)
	}
	var resp pdk.ExecuteResponse
	// A quote in the answer is escaped by the plugin's JSON writer.
	if err := p.Call("execute", pdk.ExecuteRequest{Action: "greet", Params: pdk.Params{"name": `Ada\`}}, &resp); err != nil || resp.Result["text"] != `hi, Ada\` {
		t.Fatalf("greet with a backslash: %v %+v", err, resp)
	}
	if err := p.Call("execute", pdk.ExecuteRequest{Action: "greet", Params: pdk.Params{"name": "Ada"}}, &resp); err != nil || resp.Result["text"] != "hi, Ada" {
		t.Fatalf("greet: %v %+v", err, resp)
	}
	if !strings.Contains(logs.String(), "greeted Ada") {
		t.Errorf("log line missing:\n%s", logs.String())
	}
	err := p.Call("execute", pdk.ExecuteRequest{Action: "dance"}, nil)
	var he *host.Error
	if !errors.As(err, &he) || he.Reason != host.ErrPluginFailed || !he.Permanent() || !strings.Contains(err.Error(), "greet-as: unknown action (want greet)") {
		t.Fatalf("unknown action: %#v, want a permanent failure", err)
	}
	if _, err := pdktest.LoadErr(t, wasm, pdktest.Options{Kind: "custom", Config: map[string]string{"greting": "x"}}); !errors.Is(err, host.ErrBadConfig) ||
		!strings.Contains(err.Error(), "greting: unknown config key; did you mean greeting?") {
		t.Fatalf("misspelt config: %v", err)
	}
	for i := range 100 {
		if err := p.Call("execute", pdk.ExecuteRequest{Action: "greet", Params: pdk.Params{"name": strings.Repeat("x", 100)}}, nil); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}
