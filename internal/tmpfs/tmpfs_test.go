package tmpfs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestMountAndFill(t *testing.T) {
	dir := Mount(t, 1<<20)
	free := Fill(t, dir)
	err := os.WriteFile(filepath.Join(dir, "more"), make([]byte, 8192), 0o644)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("a write to the full tmpfs: %v", err)
	}
	free()
	if err := os.WriteFile(filepath.Join(dir, "more"), make([]byte, 8192), 0o644); err != nil {
		t.Fatalf("after freeing: %v", err)
	}
}
