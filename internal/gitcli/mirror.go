package gitcli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-arcade/arcade/core/gitref"
)

// Mirrors is a cache of bare mirrors of repositories, one folder each
// under Dir, bounded to MaxBytes on disk: after a fetch, the mirrors used
// least recently are removed until the cache fits (the one just used is
// kept, whatever its size). A mirror is locked while it is fetched or
// read (in this process, and with flock against other processes sharing
// Dir).
type Mirrors struct {
	Git      *Git
	Dir      string
	MaxBytes int64
	Log      *slog.Logger

	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// Mirror is one repository's mirror, locked until Release.
type Mirror struct {
	// Path is the bare repository.
	Path string
	URL  string

	m      *Mirrors
	unlock func()
}

// ErrNoCommit is returned when a commit is not in the repository after a
// fetch (it does not exist there, or is not reachable from what the
// repository serves).
var ErrNoCommit = errors.New("commit not found in the repository")

var hexSHA = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

// IsSHA reports whether s is a full commit id (SHA-1 or SHA-256).
func IsSHA(s string) bool { return hexSHA.MatchString(s) }

// Open locks the mirror of url, making it (empty) when it is new.
func (m *Mirrors) Open(ctx context.Context, url string) (*Mirror, error) {
	if err := gitref.CheckURL(url); err != nil {
		return nil, fmt.Errorf("repository URL %w", err)
	}
	sum := sha256.Sum256([]byte(url))
	path := filepath.Join(m.Dir, hex.EncodeToString(sum[:16])+".git")
	m.mu.Lock()
	if m.locks == nil {
		m.locks = map[string]*sync.Mutex{}
	}
	l := m.locks[path]
	if l == nil {
		l = &sync.Mutex{}
		m.locks[path] = l
	}
	m.mu.Unlock()
	l.Lock()
	if err := os.MkdirAll(m.Dir, 0o700); err != nil {
		l.Unlock()
		return nil, fmt.Errorf("mirror cache: %w", err)
	}
	lf, err := lockFile(path + ".lock")
	if err != nil {
		l.Unlock()
		return nil, fmt.Errorf("mirror lock: %w", err)
	}
	mr := &Mirror{Path: path, URL: url, m: m, unlock: func() {
		now := time.Now()
		os.Chtimes(path+".lock", now, now)           //nolint:errcheck // last use, best effort
		syscall.Flock(int(lf.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it too
		lf.Close()
		l.Unlock()
	}}
	if _, err := os.Stat(filepath.Join(path, "HEAD")); err != nil {
		os.RemoveAll(path)
		if _, err := m.Git.Run(ctx, Cmd{Args: []string{"init", "--quiet", "--bare", path}}); err != nil {
			mr.Release()
			return nil, err
		}
		// The mirror serves commits by id to the workspaces made from it
		// (shallow checkouts fetch from it), and never runs gc on its own
		// while a workspace is made.
		for _, kv := range [][2]string{{"uploadpack.allowAnySHA1InWant", "true"}, {"gc.auto", "0"}, {"core.logAllRefUpdates", "false"}} {
			if _, err := m.Git.Run(ctx, Cmd{Dir: path, Args: []string{"config", kv[0], kv[1]}}); err != nil {
				mr.Release()
				return nil, err
			}
		}
	}
	return mr, nil
}

// lockFile opens and locks (flock) the file at name, made when missing.
// trim removes the lock file of a mirror it removes while holding its
// lock; a process that was waiting for that lock then holds a file no
// longer at name, so it tries again with the file now there.
func lockFile(name string) (*os.File, error) {
	for {
		lf, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
			lf.Close()
			return nil, err
		}
		held, err1 := lf.Stat()
		now, err2 := os.Stat(name)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return lf, nil
		}
		lf.Close()
		if err1 != nil {
			return nil, err1
		}
	}
}

// Release unlocks the mirror.
func (mr *Mirror) Release() {
	if mr.unlock != nil {
		mr.unlock()
		mr.unlock = nil
	}
}

// Has reports whether the mirror holds the commit.
func (mr *Mirror) Has(ctx context.Context, commit string) bool {
	if commit == "" {
		return false
	}
	_, err := mr.m.Git.Run(ctx, Cmd{Dir: mr.Path, Args: []string{"cat-file", "-e", commit + "^{commit}"}})
	return err == nil
}

// FetchResult says what a fetch did.
type FetchResult struct {
	// Fetched is false when the mirror already had the commit.
	Fetched  bool
	Duration time.Duration
}

// Fetch brings the mirror up to date with the repository's branches and
// tags (and the extra refs, such as "refs/pull/5/head"), unless it
// already holds commit. It fetches only what the mirror lacks (git's
// negotiation). When the commit is still missing, it is asked for by id.
func (mr *Mirror) Fetch(ctx context.Context, auth *Auth, commit string, extraRefs ...string) (FetchResult, error) {
	start := time.Now()
	if IsSHA(commit) && mr.Has(ctx, commit) {
		return FetchResult{Duration: time.Since(start)}, nil
	}
	specs := []string{"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"}
	for _, r := range extraRefs {
		if !strings.HasPrefix(r, "refs/") || strings.ContainsAny(r, " :*^~?[\\") {
			return FetchResult{}, fmt.Errorf("fetch: ref %q is not a full ref name", r)
		}
		specs = append(specs, "+"+r+":"+r)
	}
	args := append([]string{"fetch", "--quiet", "--prune", "--no-tags", "--no-write-fetch-head", "--", mr.URL}, specs...)
	if _, err := mr.m.Git.Run(ctx, Cmd{Dir: mr.Path, Args: args, Auth: auth}); err != nil {
		return FetchResult{}, err
	}
	if IsSHA(commit) && !mr.Has(ctx, commit) {
		if _, err := mr.m.Git.Run(ctx, Cmd{Dir: mr.Path, Args: []string{"fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--", mr.URL, commit}, Auth: auth}); err != nil || !mr.Has(ctx, commit) {
			return FetchResult{}, fmt.Errorf("%w: %s", ErrNoCommit, commit)
		}
	}
	mr.m.trim(mr.Path)
	return FetchResult{Fetched: true, Duration: time.Since(start)}, nil
}

// Resolve returns the commit a ref (a branch name, a tag name, a full ref,
// or a commit id) names in the mirror.
func (mr *Mirror) Resolve(ctx context.Context, ref string) (string, error) {
	cands := []string{ref}
	if !strings.HasPrefix(ref, "refs/") && !IsSHA(ref) {
		cands = []string{"refs/heads/" + ref, "refs/tags/" + ref}
	}
	for _, c := range cands {
		out, err := mr.m.Git.Run(ctx, Cmd{Dir: mr.Path, Args: []string{"rev-parse", "--verify", "--quiet", "--end-of-options", c + "^{commit}"}})
		if err == nil {
			return strings.TrimSpace(string(out)), nil
		}
	}
	return "", fmt.Errorf("%w: %s", ErrNoCommit, ref)
}

// ChangedFiles lists the paths that differ between from and to (git diff
// --name-only), at most limit of them (more reports truncated). An empty
// or all-zero from compares with nothing: every file of to.
func (mr *Mirror) ChangedFiles(ctx context.Context, from, to string, limit int) (files []string, truncated bool, err error) {
	var args []string
	if from == "" || strings.Trim(from, "0") == "" {
		args = []string{"ls-tree", "-r", "--name-only", "-z", "--end-of-options", to}
	} else {
		args = []string{"diff", "--name-only", "--no-renames", "-z", "--end-of-options", from, to}
	}
	out, err := mr.m.Git.Run(ctx, Cmd{Dir: mr.Path, Args: args})
	if err != nil {
		return nil, false, err
	}
	for f := range strings.SplitSeq(strings.TrimRight(string(out), "\x00"), "\x00") {
		if f == "" {
			continue
		}
		if len(files) == limit {
			return files, true, nil
		}
		files = append(files, f)
	}
	return files, false, nil
}

// MergeBase is the best common ancestor of two commits.
func (mr *Mirror) MergeBase(ctx context.Context, a, b string) (string, error) {
	out, err := mr.m.Git.Run(ctx, Cmd{Dir: mr.Path, Args: []string{"merge-base", "--end-of-options", a, b}})
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// ReadFile returns a file of the tree of commit, at most limit bytes;
// fs.ErrNotExist when the commit has no such file.
func (mr *Mirror) ReadFile(ctx context.Context, commit, name string, limit int64) ([]byte, error) {
	name = strings.TrimPrefix(filepath.ToSlash(filepath.Clean(name)), "/")
	obj := commit + ":" + name
	out, err := mr.m.Git.Run(ctx, Cmd{Dir: mr.Path, Args: []string{"cat-file", "-s", obj}})
	if err != nil {
		return nil, fmt.Errorf("%s at %.12s: %w", name, commit, fs.ErrNotExist)
	}
	var size int64
	fmt.Sscan(strings.TrimSpace(string(out)), &size) //nolint:errcheck // checked below
	if size > limit {
		return nil, fmt.Errorf("%s at %.12s is %d bytes, more than %d", name, commit, size, limit)
	}
	return mr.m.Git.Run(ctx, Cmd{Dir: mr.Path, Args: []string{"cat-file", "blob", obj}})
}

// trim removes least recently used mirrors (not keep, not locked) until
// the cache fits in MaxBytes.
func (m *Mirrors) trim(keep string) {
	if m.MaxBytes <= 0 {
		return
	}
	ents, err := os.ReadDir(m.Dir)
	if err != nil {
		return
	}
	type mir struct {
		path string
		used time.Time
		size int64
	}
	var all []mir
	var total int64
	for _, e := range ents {
		if !e.IsDir() || !strings.HasSuffix(e.Name(), ".git") {
			continue
		}
		p := filepath.Join(m.Dir, e.Name())
		var used time.Time
		if st, err := os.Stat(p + ".lock"); err == nil {
			used = st.ModTime()
		}
		size := dirSize(p)
		total += size
		all = append(all, mir{p, used, size})
	}
	slices.SortFunc(all, func(a, b mir) int { return a.used.Compare(b.used) })
	for _, x := range all {
		if total <= m.MaxBytes {
			return
		}
		if x.path == keep {
			continue
		}
		m.mu.Lock()
		l := m.locks[x.path]
		m.mu.Unlock()
		if l != nil && !l.TryLock() {
			continue
		}
		lf, err := os.OpenFile(x.path+".lock", os.O_RDWR, 0)
		if err == nil && syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			if os.RemoveAll(x.path) == nil {
				total -= x.size
				if m.Log != nil {
					m.Log.Info("mirror removed to keep the cache within its bound", "mirror", x.path, "bytes", x.size, "max_bytes", m.MaxBytes)
				}
			}
			os.Remove(x.path + ".lock")
		}
		if lf != nil {
			lf.Close()
		}
		if l != nil {
			l.Unlock()
		}
	}
}

func dirSize(p string) int64 {
	var n int64
	filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error { //nolint:errcheck // best effort
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
