package confine

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// layout makes TOP/ws (the confined tree) and TOP/outside (what must stay
// out of reach: a secret file and a directory), and returns both paths.
func layout(t *testing.T) (ws, outside string) {
	t.Helper()
	top := t.TempDir()
	ws, outside = filepath.Join(top, "ws"), filepath.Join(top, "outside")
	for _, d := range []string{ws, filepath.Join(ws, "sub", "deeper"), filepath.Join(outside, "dir")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(outside, "secret.txt"), "s3cr3t")
	write(t, filepath.Join(outside, "dir", "inner.txt"), "inner")
	write(t, filepath.Join(ws, "in.txt"), "inside")
	write(t, filepath.Join(ws, "sub", "file.txt"), "sub file")
	return ws, outside
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, at string) {
	t.Helper()
	if err := os.Symlink(target, at); err != nil {
		t.Fatal(err)
	}
}

// snapshot lists what is under dir, with contents, to show nothing changed.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := e.Info()
		b.WriteString(p + " " + fi.Mode().String())
		if e.Type().IsRegular() {
			c, _ := os.ReadFile(p)
			b.WriteString(" " + string(c))
		}
		b.WriteString("\n")
		return nil
	})
	return b.String()
}

func openDir(t *testing.T, p string) *Dir {
	t.Helper()
	d, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestEscapeIsRecognised(t *testing.T) {
	if rootEscapes() == nil {
		t.Fatal("the os package's escape error could not be found: ErrOutside would never be reported")
	}
	d := openDir(t, t.TempDir())
	if _, err := d.Stat("../x"); !errors.Is(err, ErrOutside) {
		t.Fatalf("Stat(../x): %v, want ErrOutside", err)
	}
}

// TestEveryFormOfLinkStaysInside tries each way out (a relative ".." link
// as a plugin would make it, an absolute link as a command step would, a
// chain of links, a link in a subdirectory, a dangling link to a file to
// create) with each operation, and checks the refusal and that nothing
// outside changed.
func TestEveryFormOfLinkStaysInside(t *testing.T) {
	ws, outside := layout(t)
	rel, err := filepath.Rel(ws, outside)
	if err != nil {
		t.Fatal(err)
	}
	// As in the attack: enough ".." to reach / and down again.
	deep := strings.Repeat("../", 40) + strings.TrimPrefix(outside, "/")
	symlink(t, deep, filepath.Join(ws, "esc"))                            // relative, many ".."
	symlink(t, outside, filepath.Join(ws, "abs"))                         // absolute
	symlink(t, "b", filepath.Join(ws, "a"))                               // a → b → sub/c → outside
	symlink(t, "sub/c", filepath.Join(ws, "b"))                           //
	symlink(t, "../"+rel, filepath.Join(ws, "sub", "c"))                  //
	symlink(t, "../../"+rel, filepath.Join(ws, "sub", "deeper", "up"))    // from a subdirectory
	symlink(t, rel+"/new.txt", filepath.Join(ws, "dangling"))             // a file to create
	symlink(t, "../"+rel+"/secret.txt", filepath.Join(ws, "sub", "link")) // a file
	before := snapshot(t, outside)
	d := openDir(t, ws)

	for _, via := range []string{"esc", "abs", "a", "sub/c", "sub/deeper/up"} {
		t.Run(via, func(t *testing.T) {
			ops := map[string]func() error{
				"read":      func() error { _, err := d.ReadFile(via + "/secret.txt"); return err },
				"write":     func() error { return d.WriteFile(via+"/x", []byte("x"), 0o644) },
				"overwrite": func() error { return d.WriteFile(via+"/secret.txt", []byte("x"), 0o644) },
				"list":      func() error { _, err := d.ReadDir(via); return err },
				"list dir":  func() error { _, err := d.ReadDir(via + "/dir"); return err },
				"stat":      func() error { _, err := d.Stat(via + "/secret.txt"); return err },
				"mkdir":     func() error { return d.Mkdir(via+"/made", 0o755) },
				"mkdirall":  func() error { return d.MkdirAll(via+"/made/deep", 0o755) },
				"remove":    func() error { return d.Remove(via + "/secret.txt") },
				"removeall": func() error { return d.RemoveAll(via + "/dir") },
				"rename out": func() error {
					return d.Rename("in.txt", via+"/in.txt")
				},
				"rename in": func() error { return d.Rename(via+"/secret.txt", "stolen.txt") },
				"hard link": func() error { return d.Link(via+"/secret.txt", "hard.txt") },
				"chmod":     func() error { return d.Chmod(via+"/secret.txt", 0o777) },
				"chtimes":   func() error { return d.Chtimes(via+"/secret.txt", time.Unix(1, 0), time.Unix(1, 0)) },
				"sub":       func() error { _, err := d.Sub(via); return err },
				"resolve":   func() error { _, err := d.Resolve(via + "/secret.txt"); return err },
			}
			for name, op := range ops {
				if err := op(); !errors.Is(err, ErrOutside) {
					t.Errorf("%s through %s: %v, want ErrOutside", name, via, err)
				}
			}
		})
	}
	t.Run("dangling link to a file outside", func(t *testing.T) {
		if err := d.WriteFile("dangling", []byte("x"), 0o644); !errors.Is(err, ErrOutside) {
			t.Errorf("create through a dangling link: %v", err)
		}
		if _, err := d.ReadFile("sub/link"); !errors.Is(err, ErrOutside) {
			t.Errorf("read a linked file outside: %v", err)
		}
	})
	t.Run("new links out", func(t *testing.T) {
		for _, target := range []string{"../" + rel, deep, outside, "/etc", "sub/../../" + rel, "esc/secret.txt", "b/secret.txt"} {
			if err := d.Symlink(target, "made-link"); !errors.Is(err, ErrOutside) {
				t.Errorf("Symlink(%q): %v, want ErrOutside", target, err)
			}
		}
		// A hard link to a link that leads out would be a new way out.
		if err := d.Link("esc", "esc2"); !errors.Is(err, ErrOutside) {
			t.Errorf("Link to an outward link: %v", err)
		}
	})
	if after := snapshot(t, outside); after != before {
		t.Fatalf("outside changed:\nbefore\n%s\nafter\n%s", before, after)
	}
	for _, p := range []string{"stolen.txt", "hard.txt", "made-link", "esc2"} {
		if _, err := os.Lstat(filepath.Join(ws, p)); err == nil {
			t.Errorf("%s was made", p)
		}
	}
	if c, _ := os.ReadFile(filepath.Join(ws, "in.txt")); string(c) != "inside" {
		t.Errorf("in.txt moved or changed: %q", c)
	}
}

// TestLinksInsideWork: links that stay inside are followed and may be made;
// renames and hard links inside work.
func TestLinksInsideWork(t *testing.T) {
	ws, _ := layout(t)
	symlink(t, "sub/file.txt", filepath.Join(ws, "lf"))
	symlink(t, "sub", filepath.Join(ws, "ld"))
	symlink(t, "../in.txt", filepath.Join(ws, "sub", "deeper", "x")) // wrong depth on purpose: sub/in.txt is missing
	symlink(t, "../../in.txt", filepath.Join(ws, "sub", "deeper", "y"))
	d := openDir(t, ws)
	if b, err := d.ReadFile("lf"); err != nil || string(b) != "sub file" {
		t.Errorf("read through a link inside: %q %v", b, err)
	}
	if b, err := d.ReadFile("ld/deeper/y"); err != nil || string(b) != "inside" {
		t.Errorf("read through chained links inside: %q %v", b, err)
	}
	if err := d.WriteFile("ld/new.txt", []byte("n"), 0o644); err != nil {
		t.Error(err)
	}
	if b, _ := os.ReadFile(filepath.Join(ws, "sub", "new.txt")); string(b) != "n" {
		t.Errorf("write through a linked directory landed elsewhere: %q", b)
	}
	for _, target := range []string{"sub/file.txt", "ld/file.txt", "not-yet/there", "sub/../in.txt"} {
		if err := d.Symlink(target, "ok-"+strings.ReplaceAll(target, "/", "_")); err != nil {
			t.Errorf("Symlink(%q): %v", target, err)
		}
	}
	if err := d.Symlink("../file.txt", "sub/deeper/ok"); err != nil {
		t.Errorf("relative link from a subdirectory: %v", err)
	}
	if err := d.Rename("in.txt", "sub/moved.txt"); err != nil {
		t.Error(err)
	}
	if err := d.Link("sub/moved.txt", "hard.txt"); err != nil {
		t.Error(err)
	}
	if got, err := d.Resolve("ld/deeper/y"); err != nil || got != "in.txt" {
		// y → ../../in.txt from sub/deeper; in.txt was moved, so the tail is joined as written
		t.Errorf("Resolve: %q %v", got, err)
	}
	if got, err := d.Resolve("ld/deeper"); err != nil || got != "sub/deeper" {
		t.Errorf("Resolve: %q %v", got, err)
	}
}

// TestHardLinkAlreadyInside documents the policy: a hard link that exists
// in the tree is the file itself and reads like any file.
func TestHardLinkAlreadyInside(t *testing.T) {
	ws, outside := layout(t)
	if err := os.Link(filepath.Join(outside, "secret.txt"), filepath.Join(ws, "hard.txt")); err != nil {
		t.Skip("hard links across these folders:", err)
	}
	d := openDir(t, ws)
	if b, err := d.ReadFile("hard.txt"); err != nil || string(b) != "s3cr3t" {
		t.Errorf("a hard link made by the host reads as the file it is: %q %v", b, err)
	}
}

func TestSpecialFilesAreNotOpened(t *testing.T) {
	ws, _ := layout(t)
	if err := syscall.Mkfifo(filepath.Join(ws, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := openDir(t, ws)
	done := make(chan error, 1)
	go func() { _, err := d.ReadFile("fifo"); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrSpecial) {
			t.Errorf("read a FIFO: %v, want ErrSpecial", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("opening a FIFO blocked")
	}
	if os.Geteuid() == 0 {
		// A device node a privileged step made: /dev/null's numbers.
		if err := syscall.Mknod(filepath.Join(ws, "dev"), syscall.S_IFCHR|0o666, 1<<8|3); err == nil {
			if _, err := d.Open("dev"); !errors.Is(err, ErrSpecial) {
				t.Errorf("open a device node: %v, want ErrSpecial", err)
			}
		}
	}
}

func TestReadOnly(t *testing.T) {
	ws, _ := layout(t)
	before := snapshot(t, ws)
	d, err := OpenReadOnly(ws)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if b, err := d.ReadFile("in.txt"); err != nil || string(b) != "inside" {
		t.Fatalf("read: %q %v", b, err)
	}
	for name, err := range map[string]error{
		"write":   d.WriteFile("in.txt", []byte("x"), 0o644),
		"create":  d.WriteFile("new.txt", []byte("x"), 0o644),
		"mkdir":   d.Mkdir("d", 0o755),
		"remove":  d.Remove("in.txt"),
		"rename":  d.Rename("in.txt", "x.txt"),
		"link":    d.Link("in.txt", "x.txt"),
		"symlink": d.Symlink("in.txt", "x.txt"),
		"chmod":   d.Chmod("in.txt", 0o600),
		"chtimes": d.Chtimes("in.txt", time.Unix(1, 0), time.Unix(1, 0)),
	} {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s: %v, want ErrReadOnly", name, err)
		}
	}
	if _, err := d.OpenFile("in.txt", os.O_RDWR, 0); !errors.Is(err, ErrReadOnly) {
		t.Errorf("open for writing: %v", err)
	}
	if after := snapshot(t, ws); after != before {
		t.Fatalf("a read-only directory changed:\n%s\n%s", before, after)
	}
}

func TestModesKeepPermissionBitsOnly(t *testing.T) {
	ws, _ := layout(t)
	d := openDir(t, ws)
	if err := d.Chmod("in.txt", 0o4755|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(ws, "in.txt"))
	if fi.Mode() != 0o755 {
		t.Errorf("mode %v, want -rwxr-xr-x", fi.Mode())
	}
}

// TestWalk: links inside are followed under their own names, links out and
// loops are reported and not entered.
func TestWalk(t *testing.T) {
	ws, outside := layout(t)
	rel, _ := filepath.Rel(ws, outside)
	symlink(t, "sub/file.txt", filepath.Join(ws, "lf"))
	symlink(t, "sub", filepath.Join(ws, "ld"))
	symlink(t, rel, filepath.Join(ws, "out-dir"))
	symlink(t, rel+"/secret.txt", filepath.Join(ws, "out-file"))
	symlink(t, "..", filepath.Join(ws, "sub", "loop"))
	d := openDir(t, ws)
	var files, refused []string
	err := d.Walk(".", func(name string, info fs.FileInfo, err error) error {
		switch {
		case err != nil:
			refused = append(refused, name+": "+Describe(err))
		case info.Mode().IsRegular():
			files = append(files, name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []string{"in.txt", "ld/file.txt", "lf", "sub/file.txt"}
	if !slices.Equal(files, wantFiles) {
		t.Errorf("files %q, want %q", files, wantFiles)
	}
	wantRefused := []string{
		"ld/loop: " + Describe(ErrLoop),
		"out-dir: " + Describe(ErrOutside),
		"out-file: " + Describe(ErrOutside),
		"sub/loop: " + Describe(ErrLoop),
	}
	if !slices.Equal(refused, wantRefused) {
		t.Errorf("refused %q, want %q", refused, wantRefused)
	}
}

func TestGlob(t *testing.T) {
	ws, outside := layout(t)
	rel, _ := filepath.Rel(ws, outside)
	symlink(t, rel, filepath.Join(ws, "linkdir"))
	symlink(t, "sub", filepath.Join(ws, "inlink"))
	d := openDir(t, ws)
	var skipped []string
	skip := func(name string, err error) { skipped = append(skipped, name+": "+Describe(err)) }
	for _, c := range []struct {
		pattern string
		want    []string
		skipped string // the path reported as leading outside, if any
	}{
		{"*.txt", []string{"in.txt"}, ""},
		{"sub/*", []string{"sub/deeper", "sub/file.txt"}, ""},
		{"inlink/*.txt", []string{"inlink/file.txt"}, ""},
		{"*/file.txt", []string{"inlink/file.txt", "sub/file.txt"}, "linkdir/file.txt"},
		{"linkdir/*", nil, "linkdir"},
		{"linkdir/secret.txt", nil, "linkdir/secret.txt"},
		{"missing/*", nil, ""},
		{"../*", nil, ".."},
	} {
		skipped = nil
		got, err := d.Glob(c.pattern, skip)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("Glob(%q) = %q, want %q", c.pattern, got, c.want)
		}
		var want []string
		if c.skipped != "" {
			want = []string{c.skipped + ": " + Describe(ErrOutside)}
		}
		if !slices.Equal(skipped, want) {
			t.Errorf("Glob(%q) skipped %q, want %q", c.pattern, skipped, want)
		}
	}
	if _, err := d.Glob("[", nil); err == nil {
		t.Error("a bad pattern is accepted")
	}
}
