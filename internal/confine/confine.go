// Package confine gives access to one directory tree that nothing read,
// written, listed, renamed or linked through it can leave: not a ".."
// component, not a symbolic link (relative or absolute, chained, made by
// whoever: a plugin, an earlier command step, a checkout), not a hard link
// made through it. It is the one place through which Arcade touches a folder
// that untrusted work has written: plugin mounts, artifact collection, and
// later checkouts, caches, upstream artifacts and container bind mounts.
//
// A [Dir] is an [os.Root] (traversal-resistant: every name is resolved one
// component at a time, relative to directory descriptors, symbolic links
// followed only while they stay beneath the root) plus the rules below.
//
//   - A name that leads outside, lexically or through any link, fails with
//     an error matching [ErrOutside]. Absolute link targets always lead
//     outside: the same link means a different file on the host, in a
//     container and in a plugin.
//   - Only regular files and directories are opened. A device node, FIFO or
//     socket fails with [ErrSpecial]: a device node made by a privileged
//     step would otherwise reach the host's disks.
//   - Symlink and Link refuse to make a new link whose target leads
//     outside ([ErrOutside]), so what is written through a Dir never points
//     a later, unconfined reader outside either.
//   - Modes are masked to the permission bits: no setuid, setgid or sticky
//     file is made through a Dir.
//   - A read-only Dir refuses every change with [ErrReadOnly].
//
// A hard link that already exists inside the tree is the file itself, not a
// way out: it could only be made by someone who could already reach the
// file, on the same file system. Such a file is read and written like any
// other (see docs/decisions.md).
//
// Errors are *fs.PathError values (or *os.LinkError for two names) whose
// Err is one of the sentinels above or an OS error; test them with
// errors.Is. A Dir is safe for concurrent use.
package confine

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

var (
	// ErrOutside is the error of a name, or a link target, that leads
	// outside the directory.
	ErrOutside = errors.New("leads outside the confined directory")
	// ErrReadOnly is the error of a change to a read-only directory.
	ErrReadOnly = errors.New("read-only")
	// ErrSpecial is the error of opening something that is neither a
	// regular file nor a directory.
	ErrSpecial = errors.New("not a regular file or directory")
	// ErrLoop is reported by Walk for a linked directory that contains the
	// link (following it would never end).
	ErrLoop = errors.New("a link leads back into a directory above it")
)

// maxLinks bounds the links followed while resolving one name.
const maxLinks = 40

// Dir is a confined directory tree.
type Dir struct {
	root     *os.Root
	path     string
	readOnly bool
}

// Open opens the directory at path (following links in path itself, which
// the caller chose) for reading and writing.
func Open(path string) (*Dir, error) { return open(path, false) }

// OpenReadOnly opens the directory at path for reading only.
func OpenReadOnly(path string) (*Dir, error) { return open(path, true) }

func open(p string, readOnly bool) (*Dir, error) {
	r, err := os.OpenRoot(p)
	if err != nil {
		return nil, err
	}
	return &Dir{root: r, path: p, readOnly: readOnly}, nil
}

// Path is the host path the Dir was opened with.
func (d *Dir) Path() string { return d.path }

// ReadOnly reports whether the Dir refuses changes.
func (d *Dir) ReadOnly() bool { return d.readOnly }

// Close releases the directory. Files opened through it stay usable.
func (d *Dir) Close() error { return d.root.Close() }

// Sub opens the directory name inside d as a Dir of its own, with the same
// access. Name may lead through links that stay inside d.
func (d *Dir) Sub(name string) (*Dir, error) {
	r, err := d.root.OpenRoot(clean(name))
	if err != nil {
		return nil, d.wrap("open", name, err)
	}
	return &Dir{root: r, path: joinHost(d.path, name), readOnly: d.readOnly}, nil
}

// FS returns the tree as a read-only fs.FS (with the same confinement).
func (d *Dir) FS() fs.FS { return d.root.FS() }

// writeFlags are the open flags that may change the tree.
const writeFlags = os.O_WRONLY | os.O_RDWR | os.O_CREATE | os.O_TRUNC | os.O_APPEND

// OpenFile opens name with the flags and permission bits of os.OpenFile.
// It opens regular files and directories only; anything else fails with
// ErrSpecial without being read (it is opened non-blocking, so a FIFO
// never stalls the caller).
func (d *Dir) OpenFile(name string, flag int, perm fs.FileMode) (*os.File, error) {
	if d.readOnly && flag&writeFlags != 0 {
		return nil, pathErr("open", name, ErrReadOnly)
	}
	f, err := d.root.OpenFile(clean(name), flag|oNonblock|oNoCTTY, perm.Perm())
	if err != nil {
		return nil, d.wrap("open", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, pathErr("open", name, err)
	}
	if t := fi.Mode().Type(); t != 0 && t != fs.ModeDir {
		f.Close()
		return nil, pathErr("open", name, ErrSpecial)
	}
	return f, nil
}

// Open opens name for reading.
func (d *Dir) Open(name string) (*os.File, error) { return d.OpenFile(name, os.O_RDONLY, 0) }

// ReadFile returns the content of the file name.
func (d *Dir) ReadFile(name string) ([]byte, error) {
	f, err := d.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// WriteFile writes data to the file name, creating or truncating it.
func (d *Dir) WriteFile(name string, data []byte, perm fs.FileMode) error {
	f, err := d.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadDir returns the entries of the directory name, sorted by name.
func (d *Dir) ReadDir(name string) ([]fs.DirEntry, error) {
	f, err := d.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, err
}

// Stat describes name, following links (inside only).
func (d *Dir) Stat(name string) (fs.FileInfo, error) {
	fi, err := d.root.Stat(clean(name))
	return fi, d.wrap("stat", name, err)
}

// Lstat describes name; a final link is described itself.
func (d *Dir) Lstat(name string) (fs.FileInfo, error) {
	fi, err := d.root.Lstat(clean(name))
	return fi, d.wrap("lstat", name, err)
}

// Readlink returns the target of the link name as written.
func (d *Dir) Readlink(name string) (string, error) {
	s, err := d.root.Readlink(clean(name))
	return s, d.wrap("readlink", name, err)
}

// Mkdir makes the directory name.
func (d *Dir) Mkdir(name string, perm fs.FileMode) error {
	if d.readOnly {
		return pathErr("mkdir", name, ErrReadOnly)
	}
	return d.wrap("mkdir", name, d.root.Mkdir(clean(name), perm.Perm()))
}

// MkdirAll makes the directory name and any missing parents.
func (d *Dir) MkdirAll(name string, perm fs.FileMode) error {
	if d.readOnly {
		return pathErr("mkdir", name, ErrReadOnly)
	}
	return d.wrap("mkdir", name, d.root.MkdirAll(clean(name), perm.Perm()))
}

// Remove removes the file, link or empty directory name (a final link is
// removed, not its target).
func (d *Dir) Remove(name string) error {
	if d.readOnly {
		return pathErr("remove", name, ErrReadOnly)
	}
	return d.wrap("remove", name, d.root.Remove(clean(name)))
}

// RemoveAll removes name and everything beneath it; links are removed, not
// followed.
func (d *Dir) RemoveAll(name string) error {
	if d.readOnly {
		return pathErr("remove", name, ErrReadOnly)
	}
	return d.wrap("remove", name, d.root.RemoveAll(clean(name)))
}

// Rename moves from to to; both stay inside.
func (d *Dir) Rename(from, to string) error {
	if d.readOnly {
		return linkErr("rename", from, to, ErrReadOnly)
	}
	return d.wrap2("rename", from, to, d.root.Rename(clean(from), clean(to)))
}

// Link makes the hard link newName to the file oldName. Both names are
// resolved inside; oldName may not be a link whose target leads outside.
func (d *Dir) Link(oldName, newName string) error {
	if d.readOnly {
		return linkErr("link", oldName, newName, ErrReadOnly)
	}
	if fi, err := d.root.Lstat(clean(oldName)); err == nil && fi.Mode().Type() == fs.ModeSymlink {
		target, err := d.root.Readlink(clean(oldName))
		if err != nil {
			return d.wrap2("link", oldName, newName, err)
		}
		if out, err := d.targetLeadsOut(newName, target); err != nil || out {
			if err == nil {
				err = ErrOutside
			}
			return linkErr("link", oldName, newName, err)
		}
	}
	return d.wrap2("link", oldName, newName, d.root.Link(clean(oldName), clean(newName)))
}

// Symlink makes name a symbolic link to target. A target that is absolute,
// or that leads outside from where the link is (through ".." or other
// links), is refused with ErrOutside. A target that does not exist yet is
// fine.
func (d *Dir) Symlink(target, name string) error {
	if d.readOnly {
		return linkErr("symlink", target, name, ErrReadOnly)
	}
	out, err := d.targetLeadsOut(name, target)
	if err == nil && out {
		err = ErrOutside
	}
	if err != nil {
		return linkErr("symlink", target, name, err)
	}
	return d.wrap2("symlink", target, name, d.root.Symlink(target, clean(name)))
}

// targetLeadsOut reports whether a link at name with this target would
// lead outside.
func (d *Dir) targetLeadsOut(name, target string) (bool, error) {
	if target == "" || path.IsAbs(target) || strings.HasPrefix(target, `\`) {
		return true, nil
	}
	parent, err := d.resolve(path.Dir(clean(name)), true)
	if errors.Is(err, ErrOutside) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	_, err = d.resolve(path.Join(parent, target), true)
	if errors.Is(err, ErrOutside) {
		return true, nil
	}
	if errors.Is(err, errTooManyLinks) {
		return false, nil // a loop leads nowhere, outside included
	}
	return false, err
}

// Chmod sets the permission bits of name (setuid, setgid and sticky bits
// are dropped).
func (d *Dir) Chmod(name string, mode fs.FileMode) error {
	if d.readOnly {
		return pathErr("chmod", name, ErrReadOnly)
	}
	return d.wrap("chmod", name, d.root.Chmod(clean(name), mode.Perm()))
}

// Chtimes sets the access and modification times of name; a zero time
// leaves that time as it is.
func (d *Dir) Chtimes(name string, atime, mtime time.Time) error {
	if d.readOnly {
		return pathErr("chtimes", name, ErrReadOnly)
	}
	return d.wrap("chtimes", name, d.root.Chtimes(clean(name), atime, mtime))
}

// Resolve returns where name really is inside the tree: a slash-separated
// path relative to it, with every link followed and no "." or ".."
// ("." for the top). The last components need not exist (what is missing is
// joined as written). A name leading outside fails with ErrOutside; too
// many links with an error wrapping syscall ELOOP's text.
//
// The answer is a snapshot: a path handed to something unconfined (a bind
// mount, say) may be changed by whoever can write the tree in between.
func (d *Dir) Resolve(name string) (string, error) {
	p, err := d.resolve(clean(name), true)
	if err != nil {
		return "", pathErr("resolve", name, err)
	}
	return p, nil
}

var errTooManyLinks = errors.New("too many levels of symbolic links")

// resolve walks name one component at a time through Lstat and Readlink
// on the root. With missingOK, the rest of a name whose component does not
// exist is joined lexically (and must not climb out either).
func (d *Dir) resolve(name string, missingOK bool) (string, error) {
	var done []string // resolved components, no links among them
	todo := splitName(name)
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) == 0 {
				return "", ErrOutside
			}
			done = done[:len(done)-1]
			continue
		}
		cur := path.Join(append(slices.Clone(done), c)...)
		fi, err := d.root.Lstat(cur)
		if err != nil {
			if missingOK && errors.Is(err, fs.ErrNotExist) {
				rest := path.Join(append([]string{cur}, todo...)...)
				if rest == ".." || strings.HasPrefix(rest, "../") {
					return "", ErrOutside
				}
				return rest, nil
			}
			if d.escapes(err) {
				return "", ErrOutside
			}
			return "", err
		}
		if fi.Mode().Type() != fs.ModeSymlink {
			done = append(done, c)
			continue
		}
		if links++; links > maxLinks {
			return "", errTooManyLinks
		}
		target, err := d.root.Readlink(cur)
		if err != nil {
			return "", err
		}
		if target == "" || path.IsAbs(target) || strings.HasPrefix(target, `\`) {
			return "", ErrOutside
		}
		todo = append(splitName(target), todo...)
	}
	if len(done) == 0 {
		return ".", nil
	}
	return path.Join(done...), nil
}

func splitName(name string) []string { return strings.Split(name, "/") }

// clean turns a slash-separated relative name into what os.Root takes:
// "" is the top. A leading "/" is kept, and refused by the root as leading
// outside.
func clean(name string) string {
	if name == "" {
		return "."
	}
	return name
}

func joinHost(dir, name string) string {
	return strings.TrimSuffix(dir, "/") + "/" + strings.TrimPrefix(path.Clean("/"+name), "/")
}

// rootEscapes is the error os.Root returns for a name that leads outside
// it. The os package does not export it; it is taken, once, from a lexical
// refusal that touches no file ("..", refused before any system call).
// TestEscapeIsRecognised holds the package to it.
var rootEscapes = sync.OnceValue(func() error {
	r, err := os.OpenRoot(os.TempDir())
	if err != nil {
		if r, err = os.OpenRoot("/"); err != nil {
			return nil
		}
	}
	defer r.Close()
	_, err = r.Lstat("..")
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return nil
})

func (d *Dir) escapes(err error) bool {
	e := rootEscapes()
	return e != nil && errors.Is(err, e)
}

// wrap gives a root error the package's sentinel: a name that escapes
// becomes ErrOutside.
func (d *Dir) wrap(op, name string, err error) error {
	if err == nil {
		return nil
	}
	if d.escapes(err) {
		return pathErr(op, name, ErrOutside)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pathErr(op, name, pe.Err)
	}
	return pathErr(op, name, err)
}

func (d *Dir) wrap2(op, from, to string, err error) error {
	if err == nil {
		return nil
	}
	if d.escapes(err) {
		return linkErr(op, from, to, ErrOutside)
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return linkErr(op, from, to, le.Err)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return linkErr(op, from, to, pe.Err)
	}
	return linkErr(op, from, to, err)
}

func pathErr(op, name string, err error) error { return &fs.PathError{Op: op, Path: name, Err: err} }

func linkErr(op, from, to string, err error) error {
	return &os.LinkError{Op: op, Old: from, New: to, Err: err}
}

// Describe says in words why err refused a name, for logs: "a link leads
// outside", "read-only", …; "" when err is none of the package's refusals.
func Describe(err error) string {
	switch {
	case errors.Is(err, ErrOutside):
		return "it leads outside (through \"..\" or a symbolic link)"
	case errors.Is(err, ErrLoop):
		return "a symbolic link loops back into a directory above it"
	case errors.Is(err, ErrSpecial):
		return "it is not a regular file or directory"
	case errors.Is(err, ErrReadOnly):
		return "the directory is read-only"
	}
	return ""
}
