package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	"github.com/go-arcade/arcade/internal/confine"
)

// TestArtifactsStayInsideTheWorkspace: links that lead out of the workspace
// are never followed (a linked directory as in `ln -s /etc linkdir`, a
// linked file, a link on the way), each skip is noted with its path and
// reason, and links that stay inside are followed under their own names.
func TestArtifactsStayInsideTheWorkspace(t *testing.T) {
	top := t.TempDir()
	ws, etc := filepath.Join(top, "ws"), filepath.Join(top, "etc")
	for _, d := range []string{filepath.Join(ws, "dist", "sub"), filepath.Join(etc, "ssl")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		filepath.Join(etc, "passwd"):          "root:x:0:0",
		filepath.Join(etc, "ssl", "key.pem"):  "private",
		filepath.Join(ws, "dist", "app.bin"):  "app",
		filepath.Join(ws, "dist", "sub", "x"): "x",
		filepath.Join(ws, "report.txt"):       "report",
	}
	for p, c := range files {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for at, target := range map[string]string{
		"linkdir":      etc,                       // ln -s /etc linkdir
		"rellink":      "../etc",                  // ln -s ../etc rellink
		"passwd":       "../etc/passwd",           // a linked file leading out
		"dist/escape":  "../../etc",               // a link inside a collected folder
		"latest":       "dist",                    // a linked folder inside
		"report-link":  "report.txt",              // a linked file inside
		"dist/sub/up":  "..",                      // a loop
		"dist/sub/abs": filepath.Join(ws, "dist"), // absolute, even though it points inside
	} {
		if err := os.Symlink(target, filepath.Join(ws, at)); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := confine.OpenReadOnly(ws)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	var notes []string
	a := &Agent{}
	arts := a.collectArtifacts(slog.New(slog.DiscardHandler), dir, &agentv1.ArtifactConfig{Paths: []string{
		"linkdir/*", "linkdir", "rellink/ssl/*", "passwd", "dist", "latest/app.bin", "report-link",
	}}, func(s string) { notes = append(notes, s) })

	var got []string
	for _, art := range arts {
		got = append(got, fmt.Sprintf("%s %d %s", art.GetPath(), art.GetSizeBytes(), art.GetSha256()[:8]))
	}
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:])[:8] }
	want := []string{
		"dist/app.bin 3 " + sum("app"),
		"dist/sub/x 1 " + sum("x"),
		"latest/app.bin 3 " + sum("app"),
		"report-link 6 " + sum("report"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("collected\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	outside := "it leads outside the workspace (a symbolic link, or \"..\")"
	wantNotes := []string{
		"artifact path linkdir skipped: " + outside,
		"artifact path linkdir skipped: " + outside,
		"artifact path rellink/ssl skipped: " + outside,
		"artifact path passwd skipped: " + outside,
		"artifact path dist/escape skipped: " + outside,
		"artifact path dist/sub/abs skipped: " + outside,
		"artifact path dist/sub/up skipped: a symbolic link loops back into a directory above it",
	}
	if !slices.Equal(notes, wantNotes) {
		t.Errorf("notes\n%s\nwant\n%s", strings.Join(notes, "\n"), strings.Join(wantNotes, "\n"))
	}
}
