package pdktest_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/go-arcade/arcade/host/pdktest"
	"github.com/go-arcade/arcade/pdk"
)

// TestReadmeExample builds the plugin of pdk/README.md's first code block, as
// written there, and checks it answers as the README says.
func TestReadmeExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "pdk", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```go\n")
	src, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 || !strings.Contains(src, "//go:wasmexport execute") {
		t.Fatal("README.md: no plugin code block found")
	}
	// The block is built in place of a file of this package's testdata
	// through an overlay, without writing into the source tree.
	dir := t.TempDir()
	here, _ := filepath.Abs(filepath.Join("testdata", "readme", "main.go"))
	srcPath := filepath.Join(dir, "main.go")
	if err := os.WriteFile(srcPath, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{here: srcPath}})
	overlayPath := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(overlayPath, overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	wasm := filepath.Join(dir, "hello.wasm")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-buildmode=c-shared",
		"-overlay", overlayPath, "-o", wasm, "./testdata/readme")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the README's plugin: %v\n%s", err, out)
	}
	p := pdktest.Load(t, wasm, pdktest.Options{Kind: "custom", Config: map[string]string{"greeting": "hi"},
		Workspace: map[string]string{"README.md": "a\nb\n"}})
	var resp pdk.ExecuteResponse
	if err := p.Call("execute", pdk.ExecuteRequest{Action: "greet", Params: pdk.Params{"name": "Ada"}}, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Result["text"] != "hi, Ada" {
		t.Fatalf("greet: %v", resp.Result)
	}
	if err := p.Call("execute", pdk.ExecuteRequest{Action: "lines"}, &resp); err != nil || resp.Result["lines"] != float64(2) {
		t.Fatalf("lines: %v %v", err, resp.Result)
	}
}
