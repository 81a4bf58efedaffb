//go:build !wasip1

package pdk_test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/go-arcade/arcade/pdk"
)

func goTool(t *testing.T, env []string, args ...string) string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	cmd := exec.Command(goBin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestStandardLibraryOnly: the module requires nothing, and its packages,
// built for plugins and for the machine, import the standard library only.
func TestStandardLibraryOnly(t *testing.T) {
	if mods := strings.Fields(goTool(t, nil, "list", "-m", "all")); !slices.Equal(mods, []string{"github.com/go-arcade/arcade/pdk"}) {
		t.Errorf("go list -m all: %v, want the module alone", mods)
	}
	for _, env := range [][]string{nil, {"GOOS=wasip1", "GOARCH=wasm"}} {
		out := goTool(t, env, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./...")
		for _, p := range strings.Fields(out) {
			if p != "github.com/go-arcade/arcade/pdk" {
				t.Errorf("%v: the PDK depends on %s", env, p)
			}
		}
	}
}

// TestSource: the embedded source is the module's, tests excepted or not,
// so a copy of it builds as the module does.
func TestSource(t *testing.T) {
	var names []string
	if err := fs.WalkDir(pdk.Source, ".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, path)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	onDisk, _ := filepath.Glob("*.go")
	onDisk = append(onDisk, "go.mod", "README.md")
	slices.Sort(names)
	slices.Sort(onDisk)
	if !slices.Equal(names, onDisk) {
		t.Fatalf("embedded %v, want %v", names, onDisk)
	}
	for _, n := range names {
		a, _ := fs.ReadFile(pdk.Source, n)
		b, _ := os.ReadFile(n)
		if string(a) != string(b) {
			t.Errorf("%s: embedded copy differs", n)
		}
	}
}
