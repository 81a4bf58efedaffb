package cache

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-arcade/arcade/agent/cache/cachetest"
)

// BenchmarkCacheRestore measures a cache of 200 MiB of mixed files shaped
// like a Go module cache: its save (pack and compress to the agent's local
// copy), its restore from that copy (a hit on the same agent), and, in the
// same run, `tar -xf` of the same files from an uncompressed tar, the
// baseline (restore_vs_tar: the ratio of the two).
func BenchmarkCacheRestore(b *testing.B) {
	if _, err := exec.LookPath("tar"); err != nil {
		b.Skip("tar not installed")
	}
	root := b.TempDir()
	src := filepath.Join(root, "src")
	files, total, err := cachetest.GoModCache(src, 200<<20)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { exec.Command("chmod", "-R", "u+w", root).Run() })
	plain := filepath.Join(root, "plain.tar")
	if out, err := exec.Command("tar", "-cf", plain, "-C", src, "pkg").CombinedOutput(); err != nil {
		b.Fatalf("tar -cf: %v %s", err, out)
	}
	entry := filepath.Join(root, "entry.tar.zst")
	ws := open(b, src)

	var save, restore, untar time.Duration
	fresh := func(name string) string {
		d := filepath.Join(root, name)
		exec.Command("chmod", "-R", "u+w", d).Run()
		os.RemoveAll(d)
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
		return d
	}
	for b.Loop() {
		b.StopTimer()
		f, err := os.Create(entry)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		if _, err := Pack(ws, []string{"pkg"}, f, func(string) {}); err != nil {
			b.Fatal(err)
		}
		f.Close()
		save += time.Since(t0)

		b.StopTimer()
		dst := fresh("restored")
		in, err := os.Open(entry)
		if err != nil {
			b.Fatal(err)
		}
		d := open(b, dst)
		b.StartTimer()
		t0 = time.Now()
		h := NewHashingReader(in)
		if _, err := Unpack(d, h); err != nil {
			b.Fatal(err)
		}
		_ = h.Sum()
		restore += time.Since(t0)
		in.Close()

		b.StopTimer()
		base := fresh("untarred")
		b.StartTimer()
		t0 = time.Now()
		if out, err := exec.Command("tar", "-xf", plain, "-C", base).CombinedOutput(); err != nil {
			b.Fatalf("tar -xf: %v %s", err, out)
		}
		untar += time.Since(t0)
	}
	n := float64(b.N)
	fi, _ := os.Stat(entry)
	mb := float64(total) / (1 << 20)
	b.ReportMetric(float64(files), "files")
	b.ReportMetric(mb, "MiB")
	b.ReportMetric(float64(fi.Size())/(1<<20), "MiB_compressed")
	b.ReportMetric(mb/(save.Seconds()/n), "save_MiB/s")
	b.ReportMetric(mb/(restore.Seconds()/n), "restore_MiB/s")
	b.ReportMetric(mb/(untar.Seconds()/n), "tar_xf_MiB/s")
	b.ReportMetric(restore.Seconds()/untar.Seconds(), "restore_vs_tar")
}
