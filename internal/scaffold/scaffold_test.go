package scaffold_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-arcade/arcade/internal/scaffold"
	"github.com/go-arcade/arcade/pdk"
)

func TestWriteRefusals(t *testing.T) {
	for _, c := range []struct {
		o    scaffold.Options
		want string
	}{
		{scaffold.Options{Name: "Bad_Name", Kind: "ci"}, `NAME "Bad_Name"`},
		{scaffold.Options{Name: "x", Kind: "cli"}, `--kind "cli": want one of ci, cd, security, notify, custom`},
		{scaffold.Options{Name: "x", Kind: "storage"}, "plugins/fs-store"},
		{scaffold.Options{Name: "x", Kind: "ci", Lang: "rust"}, `--lang "rust"`},
		{scaffold.Options{Name: "x", Kind: "notify", Lang: "c"}, "--lang c: --kind notify has no C scaffold (C: ci, custom)"},
	} {
		dir := filepath.Join(t.TempDir(), "p")
		if _, err := scaffold.Write(dir, c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.o, err, c.want)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%+v: the refusal wrote %s", c.o, dir)
		}
	}
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "keep.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := scaffold.Write(full, scaffold.Options{Name: "x", Kind: "ci"}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("a folder with files: %v", err)
	}
}

// TestWriteCarriesThePDK: every kind's project has its plugin, its test and
// the PDK's source (without the PDK's own tests), and go.mod points at it.
func TestWriteCarriesThePDK(t *testing.T) {
	for _, kind := range scaffold.Kinds {
		dir := filepath.Join(t.TempDir(), "p-"+kind)
		written, err := scaffold.Write(dir, scaffold.Options{Name: "p-" + kind, Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"go.mod", "Makefile", "main.go", "plugin_test.go", "arcade_test.go", "pdk/go.mod", "pdk/pdk_wasip1.go", "pdk/types.go"} {
			if !slices.Contains(written, want) {
				t.Errorf("%s: %s not written (%v)", kind, want, written)
			}
		}
		for _, p := range written {
			if strings.HasPrefix(p, "pdk/") && strings.HasSuffix(p, "_test.go") {
				t.Errorf("%s: the PDK's test %s was written", kind, p)
			}
		}
		mod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
		if !strings.Contains(string(mod), "replace github.com/go-arcade/arcade/pdk => ./pdk") {
			t.Errorf("%s: go.mod:\n%s", kind, mod)
		}
		main, _ := os.ReadFile(filepath.Join(dir, "main.go"))
		if !strings.Contains(string(main), `Name:        "p-`+kind+`"`) && !strings.Contains(string(main), `Name:         "p-`+kind+`"`) {
			t.Errorf("%s: main.go does not name the plugin", kind)
		}
	}
}

// TestWriteC: a C project carries arcade.h as the binary has it.
func TestWriteC(t *testing.T) {
	for _, kind := range []string{"ci", "custom"} {
		dir := filepath.Join(t.TempDir(), "c-"+kind)
		written, err := scaffold.Write(dir, scaffold.Options{Name: "c-" + kind, Kind: kind, Lang: "c"})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Makefile", "test.sh", "src/c-" + kind + ".c", "include/arcade.h"} {
			if !slices.Contains(written, want) {
				t.Errorf("%s: %s not written (%v)", kind, want, written)
			}
		}
		h, _ := os.ReadFile(filepath.Join(dir, "include", "arcade.h"))
		if string(h) != pdk.CHeader || !strings.Contains(string(h), "arcade_fail_permanent") {
			t.Errorf("%s: arcade.h is not the PDK's", kind)
		}
	}
}

// TestWriteAssemblyScriptMatchesTheExample: the scaffold's plugin is
// examples/plugin-as's, under the new name (one source, tested there).
func TestWriteAssemblyScriptMatchesTheExample(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "greet-as")
	if _, err := scaffold.Write(dir, scaffold.Options{Name: "greet-as", Kind: "custom", Lang: "assemblyscript"}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "assembly", "index.ts"))
	want, err := os.ReadFile("../../examples/plugin-as/assembly/index.ts")
	if err != nil || string(got) != string(want) {
		t.Fatalf("assembly/index.ts differs from examples/plugin-as (%v)", err)
	}
	if _, err := scaffold.Write(filepath.Join(t.TempDir(), "x"), scaffold.Options{Name: "x", Kind: "ci", Lang: "assemblyscript"}); err == nil ||
		!strings.Contains(err.Error(), "--lang assemblyscript: --kind ci has no AssemblyScript scaffold") {
		t.Fatalf("ci in AssemblyScript: %v", err)
	}
}
