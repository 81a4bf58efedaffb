// Package scaffold writes a new plugin project: the plugin of a kind, its
// test (which runs the built module through `arcade plugin run`), a
// Makefile, and the PDK's source beside it, so the project builds and
// passes `make test` with no access to a module proxy or to Arcade's
// repository.
package scaffold

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"github.com/go-arcade/arcade/pdk"
)

//go:embed golang c assemblyscript
var files embed.FS

// Kinds are the kinds a project can be written for.
var Kinds = []string{"ci", "cd", "security", "notify", "custom"}

// Langs are the languages a project can be written in.
var Langs = []string{"go", "c", "assemblyscript"}

// cKinds are the kinds a C project can be written for.
var cKinds = []string{"ci", "custom"}

var nameRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// Options say what to write.
type Options struct {
	Name string // the plugin's name: lower case letters, digits and -, up to 63
	Kind string // one of Kinds
	Lang string // one of Langs; "" is go
}

// Check refuses a bad name, kind or language, naming the flag.
func (o *Options) Check() error {
	if !nameRe.MatchString(o.Name) {
		return fmt.Errorf("NAME %q: want lower case letters, digits and -, starting with a letter, up to 63", o.Name)
	}
	if o.Kind == "storage" {
		return errors.New("--kind storage: no scaffold; start from plugins/fs-store in Arcade's repository (its storage contract is larger)")
	}
	if !contains(Kinds, o.Kind) {
		return fmt.Errorf("--kind %q: want one of %s", o.Kind, strings.Join(Kinds, ", "))
	}
	if o.Lang == "" {
		o.Lang = "go"
	}
	if !contains(Langs, o.Lang) {
		return fmt.Errorf("--lang %q: want one of %s", o.Lang, strings.Join(Langs, ", "))
	}
	if o.Lang == "assemblyscript" && o.Kind != "custom" {
		return fmt.Errorf("--lang assemblyscript: --kind %s has no AssemblyScript scaffold (AssemblyScript: custom)", o.Kind)
	}
	if o.Lang == "c" && !contains(cKinds, o.Kind) {
		return fmt.Errorf("--lang c: --kind %s has no C scaffold (C: %s); examples/plugin-c and docs/plugin-contracts.md show the rest", o.Kind, strings.Join(cKinds, ", "))
	}
	return nil
}

// Write writes the project into dir, which must not exist or be empty, and
// returns the paths written, relative to dir.
func Write(dir string, o Options) ([]string, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%s exists and is not empty", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	project := goProject
	switch o.Lang {
	case "c":
		project = cProject
	case "assemblyscript":
		project = asProject
	}
	out, err := project(o)
	if err != nil {
		return nil, err
	}
	var written []string
	for _, f := range out {
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return written, err
		}
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			return written, err
		}
		written = append(written, f.path)
	}
	return written, nil
}

type file struct {
	path string
	data []byte
}

// runExamples is the README's example of plugin run, per kind.
var runExamples = map[string]string{
	"ci":       "arcade plugin run NAME.wasm lint --workspace . --with require=README.md",
	"security": "arcade plugin run NAME.wasm scan --workspace .",
	"cd":       "arcade plugin run NAME.wasm deploy --workspace . --with environment=staging --with version=1.0.0",
	"notify":   `arcade plugin run NAME.wasm send --config url=http://127.0.0.1:8080/hook --allow-host 127.0.0.1 --input '{"title":"hi","body":"there"}'`,
	"custom":   "arcade plugin run NAME.wasm execute --with action=greet --with name=Ada",
}

// pluginsYAML is the README's plugins.yaml entry beyond name, path, kind.
var pluginsYAML = map[string]string{
	"ci":       "    # a step: uses: NAME, with: {require: README.md}",
	"security": "    # a step: uses: NAME, function: scan",
	"cd":       "    # a step: uses: NAME, with: {environment: staging, version: 1.0.0}",
	"notify":   "    config: {url: https://hooks.example.com/arcade}\n    grants:\n      allowed_hosts: [hooks.example.com]",
	"custom":   "    config: {greeting: hi}",
}

func templateData(o Options) map[string]string {
	return map[string]string{
		"Name": o.Name, "Kind": o.Kind,
		"RunExample":  strings.ReplaceAll(runExamples[o.Kind], "NAME", o.Name),
		"PluginsYAML": strings.ReplaceAll(pluginsYAML[o.Kind], "NAME", o.Name),
	}
}

// render renders the templates of dir (from → to) with data.
func render(dir string, data map[string]string, names []struct{ from, to string }) ([]file, error) {
	var out []file
	for _, t := range names {
		src, err := files.ReadFile(dir + "/" + t.from)
		if err != nil {
			return nil, err
		}
		tpl, err := template.New(t.from).Delims("[[", "]]").Option("missingkey=error").Parse(string(src))
		if err != nil {
			return nil, fmt.Errorf("scaffold %s: %w", t.from, err)
		}
		var b bytes.Buffer
		if err := tpl.Execute(&b, data); err != nil {
			return nil, fmt.Errorf("scaffold %s: %w", t.from, err)
		}
		out = append(out, file{path: t.to, data: b.Bytes()})
	}
	return out, nil
}

// cProject is a C plugin: its source, arcade.h, a Makefile and test.sh.
func cProject(o Options) ([]file, error) {
	out, err := render("c", templateData(o), []struct{ from, to string }{
		{"Makefile.tmpl", "Makefile"},
		{"gitignore.tmpl", ".gitignore"},
		{"README.md.tmpl", "README.md"},
		{o.Kind + ".c.tmpl", "src/" + o.Name + ".c"},
		{o.Kind + ".test.sh.tmpl", "test.sh"},
	})
	if err != nil {
		return nil, err
	}
	return append(out, file{path: "include/arcade.h", data: []byte(pdk.CHeader)}), nil
}

// asProject is an AssemblyScript plugin: its source, package.json, a
// Makefile and test.sh.
func asProject(o Options) ([]file, error) {
	return render("assemblyscript", templateData(o), []struct{ from, to string }{
		{"Makefile.tmpl", "Makefile"},
		{"gitignore.tmpl", ".gitignore"},
		{"README.md.tmpl", "README.md"},
		{"package.json.tmpl", "package.json"},
		{o.Kind + ".ts.tmpl", "assembly/index.ts"},
		{o.Kind + ".test.sh.tmpl", "test.sh"},
	})
}

func goProject(o Options) ([]file, error) {
	files, err := render("golang", templateData(o), []struct{ from, to string }{
		{"go.mod.tmpl", "go.mod"},
		{"Makefile.tmpl", "Makefile"},
		{"gitignore.tmpl", ".gitignore"},
		{"README.md.tmpl", "README.md"},
		{"arcade_test.go.tmpl", "arcade_test.go"},
		{"main_" + o.Kind + ".go.tmpl", "main.go"},
		{"plugin_" + o.Kind + "_test.go.tmpl", "plugin_test.go"},
	})
	if err != nil {
		return nil, err
	}
	// The PDK's source, without its own tests.
	err = fs.WalkDir(pdk.Source, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := pdk.Source.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, file{path: "pdk/" + p, data: b})
		return nil
	})
	return files, err
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
