package host

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
)

// dirFSMounts mounts grants the way the SDK's manifest.AllowedPaths did
// before: wazero's DirFS (which follows links anywhere), ReadFS for
// read-only grants. For comparison only.
func dirFSMounts(grants []PathGrant) mounter {
	return func(*refusals) ([]guestMount, error) {
		var out []guestMount
		for _, g := range grants {
			fs := sysfs.DirFS(g.Host)
			if g.Mode != "rw" {
				fs = &sysfs.ReadFS{FS: fs}
			}
			out = append(out, guestMount{guest: g.Guest, fs: fs, close: func() error { return nil }})
		}
		return out, nil
	}
}

var _ experimentalsys.FS = (*mountFS)(nil)

// BenchmarkPluginStepMount is what a plugin step pays for its workspace
// mount: one call that lists a folder of 1,000 small files and reads each,
// through the confined mount and through wazero's DirFS (the mount before
// confinement), in the same run.
func BenchmarkPluginStepMount(b *testing.B) {
	ws := b.TempDir()
	for i := range 1000 {
		if err := os.WriteFile(filepath.Join(ws, fmt.Sprintf("f%04d.txt", i)), []byte("small file content\n"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	data, err := os.ReadFile(testWasm.kitchen)
	if err != nil {
		b.Fatal(err)
	}
	input := []byte(`{"action":"readall","params":{"path":"/workspace"}}`)
	for _, c := range []struct {
		name  string
		mount func([]PathGrant) mounter
	}{{"dirfs-before", dirFSMounts}, {"confined", nil}} {
		b.Run(c.name, func(b *testing.B) {
			r := NewRunner(nil, WithCacheDir(testWasm.cache))
			defer r.Close(context.Background())
			r.c.mount = c.mount
			spec := Spec{Name: "reader", Kind: "custom"}
			spec.Grants.AllowedPaths = []PathGrant{{Host: ws, Guest: "/workspace", Mode: "rw"}}
			l, err := r.Load(context.Background(), spec, data)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ctx := context.Background()
			out, err := l.Call(ctx, "execute", input)
			if err != nil {
				b.Fatal(err)
			}
			if want := `"files":"1000"`; !bytesContains(out, want) {
				b.Fatalf("output %s lacks %s", out, want)
			}
			for b.Loop() {
				if _, err := l.Call(ctx, "execute", input); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func bytesContains(b []byte, s string) bool { return strings.Contains(string(b), s) }
