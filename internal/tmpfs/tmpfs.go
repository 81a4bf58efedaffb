// Package tmpfs gives tests a small file system of their own, to see what
// a full disk does to a real database.
//
// Mount mounts a tmpfs of the given size on a temporary directory and
// unmounts it when the test ends; Fill writes a file until the file system
// has no room left. Mounting needs root (Linux); without it Mount skips the
// test, unless ARCADE_REQUIRE_TMPFS is 1, in which case it fails it.
package tmpfs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// RequireEnv is the environment variable that, set to 1, turns a tmpfs
// that cannot be mounted from a skipped test into a failed one (for CI).
const RequireEnv = "ARCADE_REQUIRE_TMPFS"

// Mount returns a directory on a fresh tmpfs of size bytes.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := mount(dir, size); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("mount a tmpfs on %s: %v", dir, err)
		}
		t.Skipf("cannot mount a tmpfs (%v); set %s=1 to fail instead", err, RequireEnv)
	}
	// Registered after TempDir's own clean-up, so it runs before it.
	t.Cleanup(func() {
		if err := unmount(dir); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// Fill writes dir/filler until the file system is full and returns a func
// that removes it again.
func Fill(t testing.TB, dir string) (free func()) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	if f != nil {
		buf := make([]byte, 64<<10)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
		// Whatever is left is less than a block: take it too.
		for {
			if _, err := f.Write(buf[:1]); err != nil {
				break
			}
		}
		f.Close()
	}
	return func() { os.Remove(path) }
}
