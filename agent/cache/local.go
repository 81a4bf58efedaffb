package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-arcade/arcade/internal/confine"
)

// Local keeps copies of recent cache entries on the agent, by their
// sha256, up to a number of bytes: the least recently used go first. A hit
// on an entry kept here reads no byte from the network.
type Local struct {
	dir string
	max int64
	mu  sync.Mutex
}

// OpenLocal opens (making it) the local copy kept in dir, of at most max
// bytes (0: none is kept).
func OpenLocal(dir string, max int64) (*Local, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("local cache: %w", err)
	}
	// Downloads a stopped agent left half done.
	if left, _ := filepath.Glob(filepath.Join(dir, "*.part")); len(left) > 0 {
		for _, p := range left {
			os.Remove(p)
		}
	}
	return &Local{dir: dir, max: max}, nil
}

func validSum(sum string) bool {
	if len(sum) != 64 {
		return false
	}
	_, err := hex.DecodeString(sum)
	return err == nil
}

// Open returns the kept copy of the entry whose archive hashes to sum, and
// marks it used; ok is false when none is kept.
func (l *Local) Open(sum string, size int64) (*os.File, bool) {
	if l == nil || !validSum(sum) {
		return nil, false
	}
	p := filepath.Join(l.dir, sum+".tar.zst")
	f, err := os.Open(p)
	if err != nil {
		return nil, false
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != size {
		f.Close()
		os.Remove(p)
		return nil, false
	}
	now := time.Now()
	os.Chtimes(p, now, now)
	return f, true
}

// Create starts a new copy: write the archive to the file, then Keep or
// Discard it.
func (l *Local) Create() (*os.File, error) {
	return os.CreateTemp(l.dir, "entry-*.part")
}

// Keep names a written copy by its sha256 and evicts the least recently
// used copies over the bound (the new one last). Without room, the copy
// is discarded.
func (l *Local) Keep(f *os.File, sum string) error {
	name := f.Name()
	if err := f.Close(); err != nil {
		os.Remove(name)
		return err
	}
	if !validSum(sum) {
		os.Remove(name)
		return errors.New("local cache: bad sha256")
	}
	if err := os.Rename(name, filepath.Join(l.dir, sum+".tar.zst")); err != nil {
		os.Remove(name)
		return err
	}
	l.evict()
	return nil
}

// Fits reports whether an entry of size bytes can be kept: there is a
// local copy, and the entry is not larger than all of it.
func (l *Local) Fits(size int64) bool { return l.max > 0 && size <= l.max }

// Transient makes a written copy that is not to be kept readable once,
// from its start: it is unlinked now and gone when closed.
func (l *Local) Transient(f *os.File) (*os.File, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		l.Discard(f)
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		l.Discard(f)
		return nil, err
	}
	return f, nil
}

// Discard drops a copy that is not to be kept.
func (l *Local) Discard(f *os.File) {
	f.Close()
	os.Remove(f.Name())
}

// Path is where the copy of sum is kept.
func (l *Local) Path(sum string) string { return filepath.Join(l.dir, sum+".tar.zst") }

func (l *Local) evict() {
	l.mu.Lock()
	defer l.mu.Unlock()
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return
	}
	type kept struct {
		path string
		size int64
		used time.Time
	}
	var all []kept
	var total int64
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".tar.zst") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		all = append(all, kept{filepath.Join(l.dir, e.Name()), fi.Size(), fi.ModTime()})
		total += fi.Size()
	}
	sort.Slice(all, func(i, j int) bool { return all[i].used.Before(all[j].used) })
	for _, k := range all {
		if total <= l.max {
			return
		}
		if os.Remove(k.path) == nil {
			total -= k.size
		}
	}
}

// HashingReader hashes what is read through it.
type HashingReader struct {
	R io.Reader
	H hash.Hash
	N int64
}

// NewHashingReader returns a reader that hashes r with sha256.
func NewHashingReader(r io.Reader) *HashingReader { return &HashingReader{R: r, H: sha256.New()} }

func (h *HashingReader) Read(p []byte) (int, error) {
	n, err := h.R.Read(p)
	h.H.Write(p[:n])
	h.N += int64(n)
	return n, err
}

// Sum is the hex sha256 of what was read.
func (h *HashingReader) Sum() string { return hex.EncodeToString(h.H.Sum(nil)) }

// MaxHashedFiles bounds the files hashFiles looks at.
const MaxHashedFiles = 100_000

// HashFiles is the hash of the workspace files matching any of patterns
// (path.Match per component, "**" for any number of directories): the
// sha256 of each file's path and sha256, in path order; "" when none
// matches. Links leading outside are not followed.
func HashFiles(ws *confine.Dir, patterns []string) (string, error) {
	for _, p := range patterns {
		if _, err := path.Match(strings.ReplaceAll(p, "**", "*"), ""); err != nil {
			return "", fmt.Errorf("pattern %q: %v", p, err)
		}
	}
	var names []string
	seen := 0
	err := ws.Walk(".", func(name string, info fs.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		if seen++; seen > MaxHashedFiles {
			return fmt.Errorf("more than %d files in the workspace", MaxHashedFiles)
		}
		if info.IsDir() {
			if name == ".git" {
				return fs.SkipDir
			}
			return nil
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		for _, p := range patterns {
			if matchGlob(strings.TrimPrefix(p, "./"), name) {
				names = append(names, name)
				break
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if len(names) == 0 {
		return "", nil
	}
	sort.Strings(names)
	all := sha256.New()
	for _, n := range names {
		f, err := ws.Open(n)
		if err != nil {
			return "", err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
		fmt.Fprintf(all, "%s\x00%x\n", n, h.Sum(nil))
	}
	return hex.EncodeToString(all.Sum(nil)), nil
}

// matchGlob matches a slash-separated name against a pattern whose "**"
// components match any number of directories.
func matchGlob(pattern, name string) bool {
	return matchParts(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

func matchParts(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if matchParts(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
