package host

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// linkLayout makes a workspace and, beside it, a folder standing in for the
// host's /etc (the tests never touch the real one), and plants in the
// workspace the links an earlier command step could have made: absolute,
// relative with "..", chained, and one in a subdirectory.
func linkLayout(t *testing.T) (ws, etc string) {
	t.Helper()
	top := t.TempDir()
	ws, etc = filepath.Join(top, "ws"), filepath.Join(top, "etc")
	for _, d := range []string{filepath.Join(ws, "sub", "deeper"), filepath.Join(etc, "ssl")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, content := range map[string]string{
		filepath.Join(etc, "shadow"):      "root:$6$secret",
		filepath.Join(ws, "in.txt"):       "inside",
		filepath.Join(ws, "sub/file.txt"): "sub file",
	} {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rel, err := filepath.Rel(ws, etc)
	if err != nil {
		t.Fatal(err)
	}
	for at, target := range map[string]string{
		"etcl":          etc,                                    // ln -s /etc etcl
		"rel":           "../" + strings.TrimPrefix(rel, "../"), // ln -s ../etc rel
		"a":             "b",                                    // a → b → sub/c → etc
		"b":             "sub/c",
		"sub/c":         "../" + rel,
		"sub/deeper/up": "../../" + rel,
	} {
		if err := os.Symlink(target, filepath.Join(ws, at)); err != nil {
			t.Fatal(err)
		}
	}
	return ws, etc
}

func snapshotTree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		b.WriteString(p + " " + fi.Mode().String())
		if e.Type().IsRegular() {
			c, _ := os.ReadFile(p)
			b.WriteString(" " + string(c))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestSandboxLinksStayInGrants: a plugin with a read-write grant sees the
// granted folder and nothing else, whatever links it holds or makes, for
// reads, writes, listings, renames and new links.
func TestSandboxLinksStayInGrants(t *testing.T) {
	t.Parallel()
	ws, etc := linkLayout(t)
	before := snapshotTree(t, etc)
	rw := kitchen("linker")
	rw.Grants.AllowedPaths = []PathGrant{{Host: ws, Guest: "/workspace", Mode: "rw"}}
	m := mustLoad(t, rw)
	ctx := context.Background()
	// The attack as reported: enough ".." to climb to / and down to "etc".
	climb := strings.Repeat("../", 20) + strings.TrimPrefix(etc, "/")

	refused := func(t *testing.T, action string, params map[string]any, path string) {
		t.Helper()
		_, err := execute(ctx, t, m, "linker", action, params)
		wantErr(t, err, ErrPathNotGranted, "plugin linker: path not granted: "+path+" leads outside the granted folders")
	}
	t.Run("a link the plugin makes", func(t *testing.T) {
		refused(t, "symlink", map[string]any{"target": climb, "path": "/workspace/esc"}, "/workspace/esc")
		refused(t, "symlink", map[string]any{"target": "/etc", "path": "/workspace/abs"}, "/workspace/abs")
		refused(t, "symlink", map[string]any{"target": "../../" + filepath.Base(filepath.Dir(etc)), "path": "/workspace/sub/esc"}, "/workspace/sub/esc")
		// Through a link that already leads out.
		refused(t, "symlink", map[string]any{"target": "etcl/shadow", "path": "/workspace/via"}, "/workspace/via")
	})
	for _, via := range []string{"etcl", "rel", "a", "sub/c", "sub/deeper/up"} {
		t.Run("through "+via, func(t *testing.T) {
			p := "/workspace/" + via
			refused(t, "read", map[string]any{"path": p + "/shadow"}, p+"/shadow")
			refused(t, "write", map[string]any{"path": p + "/x", "content": "pwned"}, p+"/x")
			refused(t, "write", map[string]any{"path": p + "/shadow", "content": "pwned"}, p+"/shadow")
			refused(t, "list", map[string]any{"path": p}, p)
			refused(t, "list", map[string]any{"path": p + "/ssl"}, p+"/ssl")
			refused(t, "mkdir", map[string]any{"path": p + "/made"}, p+"/made")
			refused(t, "remove", map[string]any{"path": p + "/shadow"}, p+"/shadow")
			refused(t, "rename", map[string]any{"from": "/workspace/in.txt", "path": p + "/in.txt"}, p+"/in.txt")
			refused(t, "rename", map[string]any{"from": p + "/shadow", "path": "/workspace/stolen"}, p+"/shadow")
			refused(t, "link", map[string]any{"from": p + "/shadow", "path": "/workspace/hard"}, p+"/shadow")
		})
	}
	if after := snapshotTree(t, etc); after != before {
		t.Fatalf("the folder outside changed:\nbefore\n%s\nafter\n%s", before, after)
	}
	for _, p := range []string{"esc", "abs", "sub/esc", "via", "stolen", "hard"} {
		if _, err := os.Lstat(filepath.Join(ws, p)); err == nil {
			t.Errorf("%s was made in the workspace", p)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(ws, "in.txt")); string(b) != "inside" {
		t.Errorf("in.txt moved: %q", b)
	}

	t.Run("inside, links work", func(t *testing.T) {
		for _, op := range []struct {
			action string
			params map[string]any
		}{
			{"symlink", map[string]any{"target": "sub/file.txt", "path": "/workspace/ok"}},
			{"rename", map[string]any{"from": "/workspace/in.txt", "path": "/workspace/sub/in.txt"}},
			{"link", map[string]any{"from": "/workspace/sub/in.txt", "path": "/workspace/hard-in"}},
			{"mkdir", map[string]any{"path": "/workspace/sub/made"}},
		} {
			if _, err := execute(ctx, t, m, "linker", op.action, op.params); err != nil {
				t.Errorf("%s %v: %v", op.action, op.params, err)
			}
		}
		resp, err := execute(ctx, t, m, "linker", "read", map[string]any{"path": "/workspace/ok"})
		if err != nil || resp.GetResult().GetFields()["content"].GetStringValue() != "sub file" {
			t.Errorf("read through a link inside: %v %v", resp, err)
		}
		resp, err = execute(ctx, t, m, "linker", "readlink", map[string]any{"path": "/workspace/etcl"})
		if err != nil || resp.GetResult().GetFields()["target"].GetStringValue() != etc {
			t.Errorf("readlink shows the link as written: %v %v", resp, err)
		}
		resp, err = execute(ctx, t, m, "linker", "list", map[string]any{"path": "/workspace/sub"})
		if got := resp.GetResult().GetFields()["names"].GetStringValue(); err != nil || got != "c,deeper,file.txt,in.txt,made" {
			t.Errorf("listing: %q %v", got, err)
		}
	})
	mustEcho(t, m, "linker")
}

// TestSandboxReadOnlyGrantStaysReadOnly: a read-only grant refuses every
// change, links included, and still reads.
func TestSandboxReadOnlyGrantStaysReadOnly(t *testing.T) {
	t.Parallel()
	ws, _ := linkLayout(t)
	before := snapshotTree(t, ws)
	ro := kitchen("looker")
	ro.Grants.AllowedPaths = []PathGrant{{Host: ws, Guest: "/src"}}
	m := mustLoad(t, ro)
	ctx := context.Background()
	for action, params := range map[string]map[string]any{
		"write":   {"path": "/src/in.txt", "content": "x"},
		"symlink": {"target": "in.txt", "path": "/src/l"},
		"link":    {"from": "/src/in.txt", "path": "/src/h"},
		"rename":  {"from": "/src/in.txt", "path": "/src/moved"},
		"mkdir":   {"path": "/src/d"},
		"remove":  {"path": "/src/in.txt"},
	} {
		if _, err := execute(ctx, t, m, "looker", action, params); err == nil {
			t.Errorf("%s on a read-only grant succeeded", action)
		}
	}
	if after := snapshotTree(t, ws); after != before {
		t.Fatalf("a read-only grant changed:\nbefore\n%s\nafter\n%s", before, after)
	}
	resp, err := execute(ctx, t, m, "looker", "read", map[string]any{"path": "/src/sub/file.txt"})
	if err != nil || resp.GetResult().GetFields()["content"].GetStringValue() != "sub file" {
		t.Fatalf("read: %v %v", resp, err)
	}
}

// TestSandboxHardLinkAlreadyInGrant documents the policy: a hard link the
// host (or a command step) made inside a grant is the file itself.
func TestSandboxHardLinkAlreadyInGrant(t *testing.T) {
	t.Parallel()
	ws, etc := linkLayout(t)
	if err := os.Link(filepath.Join(etc, "shadow"), filepath.Join(ws, "hard")); err != nil {
		t.Skip("hard link:", err)
	}
	s := kitchen("hardlinked")
	s.Grants.AllowedPaths = []PathGrant{{Host: ws, Guest: "/workspace"}}
	m := mustLoad(t, s)
	resp, err := execute(context.Background(), t, m, "hardlinked", "read", map[string]any{"path": "/workspace/hard"})
	if err != nil || resp.GetResult().GetFields()["content"].GetStringValue() != "root:$6$secret" {
		t.Fatalf("read: %v %v", resp, err)
	}
}

// TestSandboxMissingGrantFolder: a granted folder missing at load still
// loads the plugin (the server creates its artifact store at start); the
// plugin has no such folder, and says so.
func TestSandboxMissingGrantFolder(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing")
	s := kitchen("early")
	s.Grants.AllowedPaths = []PathGrant{{Host: missing, Guest: "/data", Mode: "rw"}}
	m := mustLoad(t, s)
	_, err := execute(context.Background(), t, m, "early", "write", map[string]any{"path": "/data/x", "content": "x"})
	wantErr(t, err, ErrPathNotGranted, "plugin early: path not granted: open /data/x")
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("the missing folder was made")
	}
}
