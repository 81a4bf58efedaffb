package cache

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/go-arcade/arcade/internal/confine"
)

func open(t testing.TB, dir string) *confine.Dir {
	t.Helper()
	d, err := confine.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func write(t testing.TB, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPackUnpack(t *testing.T) {
	src, outside := t.TempDir(), t.TempDir()
	write(t, src, "mod/a/x.go", "package a")
	write(t, src, "mod/a/big.bin", strings.Repeat("z", 3<<20))
	write(t, src, "mod/b/y.go", "package b")
	write(t, outside, "secret", "host secret")
	must(t, os.Symlink("../a/x.go", filepath.Join(src, "mod/b/inside")))
	must(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(src, "mod/b/out-abs")))
	must(t, os.Symlink("../../../"+filepath.Base(outside)+"/secret", filepath.Join(src, "mod/b/out-rel")))
	must(t, os.Symlink(outside, filepath.Join(src, "linkdir")))
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	must(t, os.Chtimes(filepath.Join(src, "mod/a/x.go"), old, old))
	must(t, os.Chmod(filepath.Join(src, "mod/a/x.go"), 0o444))
	must(t, os.Chmod(filepath.Join(src, "mod/a"), 0o555))
	t.Cleanup(func() { os.Chmod(filepath.Join(src, "mod/a"), 0o755) })

	var notes []string
	var buf bytes.Buffer
	st, err := Pack(open(t, src), []string{"mod", "linkdir/secret", "missing"}, &buf, func(s string) { notes = append(notes, s) })
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 3 || st.Links != 1 {
		t.Errorf("packed %+v, want 3 files and the one inside link", st)
	}
	joined := strings.Join(notes, "\n")
	for _, want := range []string{"mod/b/out-abs left out", "mod/b/out-rel left out", "linkdir/secret left out"} {
		if !strings.Contains(joined, want) {
			t.Errorf("notes lack %q:\n%s", want, joined)
		}
	}
	dst := t.TempDir()
	t.Cleanup(func() { os.Chmod(filepath.Join(dst, "mod/a"), 0o755) })
	if _, err := Unpack(open(t, dst), bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "mod/b/inside")); string(b) != "package a" {
		t.Errorf("inside link reads %q", b)
	}
	fi, err := os.Stat(filepath.Join(dst, "mod/a/x.go"))
	if err != nil || !fi.ModTime().Equal(old) || fi.Mode().Perm() != 0o444 {
		t.Errorf("x.go: %v, mtime %v mode %v", err, fi.ModTime(), fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Join(dst, "mod/a")); fi.Mode().Perm() != 0o555 {
		t.Errorf("mod/a mode %v", fi.Mode())
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "mod/a/big.bin")); len(b) != 3<<20 {
		t.Errorf("big.bin: %d bytes", len(b))
	}
	if _, err := os.Lstat(filepath.Join(dst, "mod/b/out-abs")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a link leading out was packed")
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// archive makes a tar.zst of the given headers (with content for files).
func archive(t testing.TB, entries ...tar.Header) []byte {
	var buf bytes.Buffer
	enc, _ := zstd.NewWriter(&buf)
	tw := tar.NewWriter(enc)
	for _, h := range entries {
		body := []byte("x")
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		must(t, tw.WriteHeader(&h))
		if h.Typeflag == tar.TypeReg {
			tw.Write(body)
		}
	}
	must(t, tw.Close())
	must(t, enc.Close())
	return buf.Bytes()
}

func TestUnpackRefusesUnsafeEntries(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []tar.Header
		want    string
	}{
		{"dot-dot", []tar.Header{{Name: "../escape", Typeflag: tar.TypeReg}}, `climbs out with ".."`},
		{"dot-dot inside", []tar.Header{{Name: "a/../../escape", Typeflag: tar.TypeReg}}, `climbs out with ".."`},
		{"absolute", []tar.Header{{Name: "/etc/passwd", Typeflag: tar.TypeReg}}, "absolute path"},
		{"absolute link", []tar.Header{{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc"}}, "outside the workspace"},
		{"outward link", []tar.Header{{Name: "a/l", Typeflag: tar.TypeSymlink, Linkname: "../../x"}}, "outside the workspace"},
		{"link then a file through it", []tar.Header{{Name: "d", Typeflag: tar.TypeSymlink, Linkname: "../.."}, {Name: "d/x", Typeflag: tar.TypeReg}}, "outside the workspace"},
		{"hard link", []tar.Header{{Name: "h", Typeflag: tar.TypeLink, Linkname: "x"}}, "hard link"},
		{"device", []tar.Header{{Name: "dev", Typeflag: tar.TypeChar}}, "not a file, directory or link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			ws := filepath.Join(root, "ws")
			must(t, os.Mkdir(ws, 0o755))
			_, err := Unpack(open(t, ws), bytes.NewReader(archive(t, tc.entries...)))
			var ue *UnsafeError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Unpack = %v, want an *UnsafeError with %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(root, "escape")); err == nil {
				t.Fatal("a file was written outside the workspace")
			}
			if _, err := os.Stat(filepath.Join(root, "x")); err == nil {
				t.Fatal("a file was written outside the workspace")
			}
		})
	}
}

func TestHashFiles(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "go.sum", "a")
	write(t, dir, "sub/deep/go.sum", "b")
	write(t, dir, "sub/go.mod", "c")
	ws := open(t, dir)
	h1, err := HashFiles(ws, []string{"**/go.sum"})
	if err != nil || h1 == "" {
		t.Fatal(h1, err)
	}
	if h, _ := HashFiles(ws, []string{"nothing*"}); h != "" {
		t.Errorf("no match hashes to %q", h)
	}
	write(t, dir, "sub/deep/go.sum", "changed")
	if h2, _ := HashFiles(ws, []string{"**/go.sum"}); h2 == h1 {
		t.Error("the hash did not change with a file")
	}
	if h3, _ := HashFiles(ws, []string{"go.sum"}); h3 == h1 {
		t.Error("go.sum matched files in subdirectories")
	}
	for pat, name := range map[string]string{"**/x.go": "x.go", "a/**/b": "a/b", "a/*/c": "a/z/c"} {
		if !matchGlob(pat, name) {
			t.Errorf("%s does not match %s", pat, name)
		}
	}
}

func TestLocalEvictsLeastRecentlyUsed(t *testing.T) {
	l, err := OpenLocal(t.TempDir(), 250)
	must(t, err)
	put := func(b byte) string {
		f, err := l.Create()
		must(t, err)
		f.Write(bytes.Repeat([]byte{b}, 100))
		sum := strings.Repeat(string("0123456789abcdef"[b%16]), 64)
		must(t, l.Keep(f, sum))
		time.Sleep(20 * time.Millisecond)
		return sum
	}
	a, b := put(1), put(2)
	if f, ok := l.Open(a, 100); ok { // a used after b
		f.Close()
	}
	time.Sleep(20 * time.Millisecond)
	c := put(3)
	if _, ok := l.Open(b, 100); ok {
		t.Error("b, least recently used, was kept over the bound")
	}
	for _, s := range []string{a, c} {
		f, ok := l.Open(s, 100)
		if !ok {
			t.Errorf("%s…: not kept", s[:4])
			continue
		}
		f.Close()
	}
}
