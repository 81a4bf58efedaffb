package host

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"sync"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"

	"github.com/go-arcade/arcade/internal/confine"
)

// A plugin's granted folders reach it through mountFS: a WASI file system
// (wazero's experimental sys.FS) over a confine.Dir. Every name the plugin
// uses, and every link on its way, is resolved inside the grant; a name
// that leads outside fails with EPERM and is recorded, so that the call's
// failure says which path was refused. The folders are mounted through the
// instance's module config (see newInstance), never through the manifest's
// AllowedPaths, whose mounts follow links anywhere on the host.

// guestMount is one file system mounted at a guest path.
type guestMount struct {
	guest string
	fs    experimentalsys.FS
	close func() error
}

// mounter opens the file systems of one instance; seen records what they
// refuse.
type mounter func(seen *refusals) ([]guestMount, error)

// confinedMounts mounts each granted folder through a confine.Dir, read-only
// unless the grant says rw. A folder is opened at the instance's first use
// of it, and again at the next use while it is missing (the server creates
// some, such as its artifact store, after loading the plugins).
func confinedMounts(grants []PathGrant) mounter {
	return func(seen *refusals) ([]guestMount, error) {
		out := make([]guestMount, 0, len(grants))
		for _, g := range grants {
			m := &mountFS{host: g.Host, readOnly: g.Mode != "rw", guest: g.Guest, seen: seen}
			out = append(out, guestMount{guest: g.Guest, fs: m, close: m.close})
		}
		return out, nil
	}
}

// missingFolders lists the granted folders that cannot be opened now.
func missingFolders(grants []PathGrant) []string {
	var out []string
	for _, g := range grants {
		if fi, err := os.Stat(g.Host); err != nil || !fi.IsDir() {
			out = append(out, g.Host)
		}
	}
	return out
}

// refusals records the guest paths refused during the call in progress
// because they lead outside every grant.
type refusals struct {
	mu    sync.Mutex
	first string
	n     int
}

func (r *refusals) add(guestPath string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == 0 {
		r.first = guestPath
	}
	r.n++
}

// take returns the first refused path and how many there were, and forgets
// them.
func (r *refusals) take() (string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	first, n := r.first, r.n
	r.first, r.n = "", 0
	return first, n
}

// mountFS is one granted folder as the plugin's file system.
type mountFS struct {
	experimentalsys.UnimplementedFS
	host     string
	readOnly bool
	guest    string
	seen     *refusals

	mu sync.Mutex
	d  *confine.Dir // nil until opened
}

// dir returns the folder, opening it if need be.
func (m *mountFS) dir() (*confine.Dir, experimentalsys.Errno) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.d != nil {
		return m.d, 0
	}
	open := confine.Open
	if m.readOnly {
		open = confine.OpenReadOnly
	}
	d, err := open(m.host)
	if err != nil {
		return nil, experimentalsys.UnwrapOSError(err)
	}
	m.d = d
	return d, 0
}

func (m *mountFS) close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.d == nil {
		return nil
	}
	err := m.d.Close()
	m.d = nil
	return err
}

// name turns a path from wazero (relative to the mount, cleaned, maybe with
// a trailing slash) into one for the Dir.
func name(p string) string {
	if p == "" || p == "/" {
		return "."
	}
	return p
}

// errno maps an error of the Dir to the guest's errno; a path that leads
// outside is recorded.
func (m *mountFS) errno(p string, err error) experimentalsys.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, confine.ErrOutside):
		m.seen.add(path.Join(m.guest, p))
		return experimentalsys.EPERM
	case errors.Is(err, confine.ErrReadOnly):
		return experimentalsys.EROFS
	case errors.Is(err, confine.ErrSpecial):
		return experimentalsys.EACCES
	}
	return experimentalsys.UnwrapOSError(err)
}

// OpenFile implements experimentalsys.FS.
func (m *mountFS) OpenFile(p string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	d, errno := m.dir()
	if errno != 0 {
		return nil, errno
	}
	n := name(p)
	if flag&experimentalsys.O_NOFOLLOW != 0 {
		// The root follows a final link inside; O_NOFOLLOW asks not to.
		if fi, err := d.Lstat(n); err == nil && fi.Mode().Type() == fs.ModeSymlink {
			return nil, experimentalsys.ELOOP
		}
	}
	var osFlag int
	switch flag & (experimentalsys.O_RDONLY | experimentalsys.O_RDWR | experimentalsys.O_WRONLY) {
	case experimentalsys.O_RDWR:
		osFlag = os.O_RDWR
	case experimentalsys.O_WRONLY:
		osFlag = os.O_WRONLY
	}
	for _, f := range []struct {
		wasi experimentalsys.Oflag
		os   int
	}{
		{experimentalsys.O_APPEND, os.O_APPEND}, {experimentalsys.O_CREAT, os.O_CREATE},
		{experimentalsys.O_EXCL, os.O_EXCL}, {experimentalsys.O_SYNC, os.O_SYNC}, {experimentalsys.O_TRUNC, os.O_TRUNC},
	} {
		if flag&f.wasi != 0 {
			osFlag |= f.os
		}
	}
	f, err := d.OpenFile(n, osFlag, perm)
	if err != nil {
		return nil, m.errno(p, err)
	}
	mf, errno := wrapFile(d, n, f, flag&experimentalsys.O_APPEND != 0)
	if errno != 0 {
		f.Close()
		return nil, errno
	}
	if dir, _ := mf.IsDir(); flag&experimentalsys.O_DIRECTORY != 0 && !dir {
		mf.Close()
		return nil, experimentalsys.ENOTDIR
	}
	return mf, 0
}

// Lstat implements experimentalsys.FS.
func (m *mountFS) Lstat(p string) (sys.Stat_t, experimentalsys.Errno) {
	d, errno := m.dir()
	if errno != 0 {
		return sys.Stat_t{}, errno
	}
	fi, err := d.Lstat(name(p))
	if err != nil {
		return sys.Stat_t{}, m.errno(p, err)
	}
	return sys.NewStat_t(fi), 0
}

// Stat implements experimentalsys.FS.
func (m *mountFS) Stat(p string) (sys.Stat_t, experimentalsys.Errno) {
	d, errno := m.dir()
	if errno != 0 {
		return sys.Stat_t{}, errno
	}
	fi, err := d.Stat(name(p))
	if err != nil {
		return sys.Stat_t{}, m.errno(p, err)
	}
	return sys.NewStat_t(fi), 0
}

// Mkdir implements experimentalsys.FS.
func (m *mountFS) Mkdir(p string, perm fs.FileMode) experimentalsys.Errno {
	d, errno := m.dir()
	if errno != 0 {
		return errno
	}
	errno = m.errno(p, d.Mkdir(name(p), perm))
	if errno == experimentalsys.ENOTDIR {
		errno = experimentalsys.ENOENT
	}
	return errno
}

// Chmod implements experimentalsys.FS.
func (m *mountFS) Chmod(p string, perm fs.FileMode) experimentalsys.Errno {
	d, errno := m.dir()
	if errno != 0 {
		return errno
	}
	return m.errno(p, d.Chmod(name(p), perm))
}

// Rename implements experimentalsys.FS.
func (m *mountFS) Rename(from, to string) experimentalsys.Errno {
	d, errno := m.dir()
	if errno != 0 {
		return errno
	}
	err := d.Rename(name(from), name(to))
	if errors.Is(err, confine.ErrOutside) {
		// Either name may be the one that leads out; record the first that does.
		if _, e := d.Resolve(name(from)); e != nil {
			return m.errno(from, err)
		}
		return m.errno(to, err)
	}
	return m.errno(from, err)
}

// Rmdir implements experimentalsys.FS.
func (m *mountFS) Rmdir(p string) experimentalsys.Errno {
	d, errno := m.dir()
	if errno != 0 {
		return errno
	}
	fi, err := d.Lstat(name(p))
	if err != nil {
		return m.errno(p, err)
	}
	if !fi.IsDir() {
		return experimentalsys.ENOTDIR
	}
	return m.errno(p, d.Remove(name(p)))
}

// Unlink implements experimentalsys.FS.
func (m *mountFS) Unlink(p string) experimentalsys.Errno {
	d, errno := m.dir()
	if errno != 0 {
		return errno
	}
	fi, err := d.Lstat(name(p))
	if err != nil {
		return m.errno(p, err)
	}
	if fi.IsDir() {
		return experimentalsys.EISDIR
	}
	return m.errno(p, d.Remove(name(p)))
}

// Link implements experimentalsys.FS.
func (m *mountFS) Link(oldPath, newPath string) experimentalsys.Errno {
	d, errno := m.dir()
	if errno != 0 {
		return errno
	}
	return m.errno(oldPath, d.Link(name(oldPath), name(newPath)))
}

// Symlink implements experimentalsys.FS. The target is kept as written; one
// that leads outside is refused.
func (m *mountFS) Symlink(target, linkName string) experimentalsys.Errno {
	d, errno := m.dir()
	if errno != 0 {
		return errno
	}
	return m.errno(linkName, d.Symlink(target, name(linkName)))
}

// Readlink implements experimentalsys.FS.
func (m *mountFS) Readlink(p string) (string, experimentalsys.Errno) {
	d, errno := m.dir()
	if errno != 0 {
		return "", errno
	}
	s, err := d.Readlink(name(p))
	if err != nil {
		return "", m.errno(p, err)
	}
	return s, 0
}

// Utimens implements experimentalsys.FS.
func (m *mountFS) Utimens(p string, atim, mtim int64) experimentalsys.Errno {
	d, errno := m.dir()
	if errno != 0 {
		return errno
	}
	if atim == experimentalsys.UTIME_OMIT && mtim == experimentalsys.UTIME_OMIT {
		return 0
	}
	return m.errno(p, d.Chtimes(name(p), wasiTime(atim), wasiTime(mtim)))
}

// wasiTime turns a WASI timestamp into what Chtimes takes: the zero time
// leaves the time alone.
func wasiTime(t int64) time.Time {
	switch t {
	case experimentalsys.UTIME_OMIT:
		return time.Time{}
	}
	return time.Unix(0, t)
}

// mountFile is a file or directory opened through a mountFS. Reading,
// seeking, listing and writing are wazero's own file over the *os.File
// (sysfs.AdaptFS); what it leaves unimplemented is done here.
type mountFile struct {
	experimentalsys.File
	f        *os.File
	append   bool
	readOnly bool
}

// openedFile serves one opened file to sysfs.AdaptFS: the first Open
// returns it, later ones (wazero reopens a directory to rewind its
// listing) open the name again through the Dir.
type openedFile struct {
	dir   *confine.Dir
	first *os.File
	used  bool
}

func (o *openedFile) Open(name string) (fs.File, error) {
	if !o.used {
		o.used = true
		return o.first, nil
	}
	return o.dir.Open(name)
}

func wrapFile(d *confine.Dir, n string, f *os.File, append bool) (*mountFile, experimentalsys.Errno) {
	af, errno := (&sysfs.AdaptFS{FS: &openedFile{dir: d, first: f}}).OpenFile(n, experimentalsys.O_RDONLY, 0)
	if errno != 0 {
		return nil, errno
	}
	return &mountFile{File: af, f: f, append: append, readOnly: d.ReadOnly()}, 0
}

// IsAppend implements experimentalsys.File.
func (f *mountFile) IsAppend() bool { return f.append }

// SetAppend implements experimentalsys.File.
func (f *mountFile) SetAppend(enable bool) experimentalsys.Errno {
	if dir, _ := f.IsDir(); dir {
		return experimentalsys.EISDIR
	}
	if errno := setAppend(f.f, enable); errno != 0 {
		return errno
	}
	f.append = enable
	return 0
}

// Truncate implements experimentalsys.File.
func (f *mountFile) Truncate(size int64) experimentalsys.Errno {
	if dir, _ := f.IsDir(); dir {
		return experimentalsys.EISDIR
	}
	if size < 0 {
		return experimentalsys.EINVAL
	}
	return experimentalsys.UnwrapOSError(f.f.Truncate(size))
}

// Sync implements experimentalsys.File.
func (f *mountFile) Sync() experimentalsys.Errno { return experimentalsys.UnwrapOSError(f.f.Sync()) }

// Datasync implements experimentalsys.File.
func (f *mountFile) Datasync() experimentalsys.Errno { return f.Sync() }

// Utimens implements experimentalsys.File.
func (f *mountFile) Utimens(atim, mtim int64) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	return utimens(f.f, atim, mtim)
}
