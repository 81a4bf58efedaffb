package pdktest_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-arcade/arcade/host/pdktest"
)

// TestForeignRuntime proves the ABI is Extism's own: the probe, built with
// this PDK, runs under the Extism JavaScript runtime (@extism/extism on
// Node, a runtime we did not write) and answers exactly as under Arcade's
// host. It needs node and `npm ci --prefix host/pdktest/testdata/js`; without them it
// skips, unless ARCADE_REQUIRE_FOREIGN=1.
func TestForeignRuntime(t *testing.T) {
	node, err := exec.LookPath("node")
	jsDir, _ := filepath.Abs("testdata/js")
	if err == nil {
		_, err = os.Stat(filepath.Join(jsDir, "node_modules", "@extism", "extism"))
	}
	if err != nil {
		if os.Getenv("ARCADE_REQUIRE_FOREIGN") == "1" {
			t.Fatalf("foreign runtime check required but unavailable: %v (install node 20 and run npm ci --prefix host/pdktest/testdata/js)", err)
		}
		t.Skipf("Extism JavaScript runtime unavailable (%v); npm ci --prefix host/pdktest/testdata/js to run this check", err)
	}
	wasm := probe(t)
	config := map[string]string{"channel": "#builds"}
	big := bytes.Repeat([]byte("arcade "), 20000) // 140 KB
	calls := []struct {
		fn    string
		input []byte
	}{
		{"metadata", nil},
		{"echo", []byte("hello")},
		{"echo", big},
		{"execute", []byte(`{"action":"upper","params":{"text":"same everywhere"}}`)},
		{"execute", []byte(`{"action":"config","params":{"key":"channel"}}`)},
		{"execute", []byte(`{"action":"setvar","params":{"key":"k","value":"v1"}}`)},
		{"execute", []byte(`{"action":"getvar","params":{"key":"k"}}`)},
		{"execute", []byte(`{"action":"log","params":{"level":"warn","message":"from js"}}`)},
	}

	p := pdktest.Load(t, wasm, pdktest.Options{Config: config, MaxInstances: 1})
	type job struct {
		Fn    string `json:"fn"`
		Input string `json:"input"`
	}
	var jobs []job
	var want []string
	for _, c := range calls {
		out, err := p.Plugin.Call(t.Context(), c.fn, c.input)
		if err != nil {
			t.Fatalf("host %s: %v", c.fn, err)
		}
		want = append(want, string(out))
		jobs = append(jobs, job{c.fn, base64.StdEncoding.EncodeToString(c.input)})
	}

	in, _ := json.Marshal(map[string]any{"wasm": wasm, "config": config, "calls": jobs})
	cmd := exec.CommandContext(t.Context(), node, filepath.Join(jsDir, "run.mjs"))
	cmd.Dir = jsDir
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var got []struct {
		Output string `json:"output"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(calls) {
		t.Fatalf("node output %q: %v", out, err)
	}
	for i, c := range calls {
		if got[i].Error != "" {
			t.Errorf("js %s: %s", c.fn, got[i].Error)
			continue
		}
		b, _ := base64.StdEncoding.DecodeString(got[i].Output)
		w := want[i]
		if string(b) != w {
			t.Errorf("%s %.60q: host %.200q, js %.200q", c.fn, c.input, w, b)
		}
	}
	if !strings.Contains(stderr.String(), "from js") {
		t.Errorf("the plugin's log line did not reach the JS runtime's logger: %s", stderr.String())
	}
}
