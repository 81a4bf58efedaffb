package gitcli_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-arcade/arcade/internal/gitcli"
	"github.com/go-arcade/arcade/internal/gittest"
)

// mirrorFixture is a folder of repositories, each holding one
// incompressible file of about the same size, and a mirror cache.
type mirrorFixture struct {
	t       *testing.T
	remote  *gittest.Remote
	mirrors *gitcli.Mirrors
	heads   map[string]string
	urls    map[string]string
}

func newMirrorFixture(t *testing.T, names ...string) *mirrorFixture {
	t.Helper()
	remote := gittest.New(t)
	g, err := gitcli.Find()
	if err != nil {
		t.Skip(err)
	}
	g.TempDir = t.TempDir()
	f := &mirrorFixture{t: t, remote: remote, heads: map[string]string{}, urls: map[string]string{},
		mirrors: &gitcli.Mirrors{Git: g, Dir: filepath.Join(t.TempDir(), "mirrors")}}
	for _, n := range names {
		blob := make([]byte, 96<<10)
		rand.Read(blob)
		r := remote.Repo(n)
		f.heads[n] = r.Commit(map[string]string{"blob.txt": hex.EncodeToString(blob)}, "blob")
		f.urls[n] = r.FileURL()
	}
	return f
}

// fetch brings the mirror of repository name up to date, at the given
// last use (the cache removes the least recently used first).
func (f *mirrorFixture) fetch(name string, used time.Time) string {
	f.t.Helper()
	mr, err := f.mirrors.Open(context.Background(), f.urls[name])
	if err != nil {
		f.t.Fatal(err)
	}
	defer mr.Release()
	res, err := mr.Fetch(context.Background(), nil, f.heads[name])
	if err != nil || !res.Fetched {
		f.t.Fatalf("fetch %s: %+v %v", name, res, err)
	}
	if got, err := mr.Resolve(context.Background(), "main"); err != nil || got != f.heads[name] {
		f.t.Fatalf("mirror of %s at %q (%v), want %s", name, got, err, f.heads[name])
	}
	path := mr.Path
	mr.Release()
	os.Chtimes(path+".lock", used, used)
	return path
}

func exists(p string) bool {
	_, err := os.Stat(filepath.Join(p, "HEAD"))
	return err == nil
}

func size(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// The mirror cache stays within its bound: after a fetch, the mirrors used
// least recently are removed until the cache fits, never the one just
// fetched (even when it alone is over the bound) and never one in use.
func TestMirrorsStayWithinTheirBound(t *testing.T) {
	f := newMirrorFixture(t, "a", "b", "c", "d")
	t0 := time.Now().Add(-time.Hour)
	a := f.fetch("a", t0)
	b := f.fetch("b", t0.Add(time.Minute))
	one := size(t, a)
	if one < 64<<10 {
		t.Fatalf("a mirror holds %d bytes, want more than the file it mirrors", one)
	}
	// Room for two mirrors and a half: the third fetch removes the least
	// recently used (a), keeps b and the new one.
	f.mirrors.MaxBytes = one*5/2 + 1
	c := f.fetch("c", t0.Add(2*time.Minute))
	if exists(a) || !exists(b) || !exists(c) {
		t.Fatalf("after the third fetch: a %v b %v c %v, want only a removed", exists(a), exists(b), exists(c))
	}
	if total := size(t, f.mirrors.Dir); total > f.mirrors.MaxBytes {
		t.Fatalf("the cache holds %d bytes, over its bound of %d", total, f.mirrors.MaxBytes)
	}

	// b is the least recently used but in use: c goes instead.
	held, err := f.mirrors.Open(context.Background(), f.urls["b"])
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan string)
	go func() { done <- f.fetch("d", t0.Add(3*time.Minute)) }()
	var d string
	select {
	case d = <-done:
	case <-time.After(time.Minute):
		t.Fatal("a fetch of another repository waited for a mirror in use")
	}
	held.Release()
	if !exists(b) || exists(c) || !exists(d) {
		t.Fatalf("with b in use: b %v c %v d %v, want c removed", exists(b), exists(c), exists(d))
	}

	// A bound smaller than one mirror keeps only the one just fetched.
	f.mirrors.MaxBytes = 1
	a = f.fetch("a", t0.Add(4*time.Minute))
	if !exists(a) || exists(b) || exists(d) {
		t.Fatalf("bound of 1 byte: a %v b %v d %v, want only a", exists(a), exists(b), exists(d))
	}
	// A removed mirror comes back whole when its repository is fetched again.
	f.fetch("b", t0.Add(5*time.Minute))
}

// Two processes sharing a mirror cache (here two Mirrors over one folder,
// which share only the file locks): when a mirror and its lock file are
// removed by the holder of its lock (trim), a process that waited for that
// lock does not take the mirror while another holds it through the lock
// file now in its place.
func TestMirrorLockSurvivesRemoval(t *testing.T) {
	f := newMirrorFixture(t, "a")
	other := func() *gitcli.Mirrors { return &gitcli.Mirrors{Git: f.mirrors.Git, Dir: f.mirrors.Dir} }
	ctx := context.Background()
	first, err := other().Open(ctx, f.urls["a"])
	if err != nil {
		t.Fatal(err)
	}
	waiter := make(chan *gitcli.Mirror)
	go func() {
		mr, err := other().Open(ctx, f.urls["a"])
		if err != nil {
			t.Error(err)
		}
		waiter <- mr
	}()
	time.Sleep(300 * time.Millisecond) // the waiter blocks on the lock
	// What trim does, holding the lock: the mirror and its lock file go.
	os.RemoveAll(first.Path)
	os.Remove(first.Path + ".lock")
	third, err := other().Open(ctx, f.urls["a"])
	if err != nil {
		t.Fatal(err)
	}
	first.Release()
	select {
	case mr := <-waiter:
		mr.Release()
		t.Fatal("a process took the mirror while another held it")
	case <-time.After(time.Second):
	}
	third.Release()
	select {
	case mr := <-waiter:
		mr.Release()
	case <-time.After(time.Minute):
		t.Fatal("the waiting process never got the mirror")
	}
}
