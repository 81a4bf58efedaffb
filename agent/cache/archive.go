// Package cache is the agent's side of job caches: the archive format (a
// tar stream compressed with zstd), packing a job's cache paths out of its
// workspace and unpacking an entry into one, both only through the
// confined workspace (internal/confine), the local copy of recent entries
// that makes a hit on the same agent cost no network, and hashFiles.
//
// Unpacking refuses an entry holding a name that is absolute or climbs
// out with "..", a link whose target leads outside, a hard link, a device
// or anything else that is neither a file, a directory nor a link: the
// restore fails and names it. Packing never follows a link out of the
// workspace: such a link is left out and said.
package cache

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/go-arcade/arcade/internal/confine"
)

// Stats count what an archive holds.
type Stats struct {
	Files, Dirs, Links int
	// Bytes are the files' bytes (uncompressed).
	Bytes int64
}

// Limits bound what one unpack writes.
const (
	MaxEntries = 1_000_000
	// MaxNameLen bounds one entry's name.
	MaxNameLen = 4096
)

// Pack writes the archive of paths (relative to ws: files, or
// directories taken whole) to w. A path that does not exist is passed
// over; a link that leads outside (or a directory on the way that does) is
// left out and said through note, and so is anything that is neither a
// file, a directory nor a link.
func Pack(ws *confine.Dir, paths []string, w io.Writer, note func(string)) (Stats, error) {
	var st Stats
	enc, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
	if err != nil {
		return st, err
	}
	tw := tar.NewWriter(enc)
	seen := map[string]bool{}
	buf := make([]byte, 256<<10)
	var add func(name string) error
	add = func(name string) error {
		if seen[name] {
			return nil
		}
		seen[name] = true
		fi, err := ws.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			note(fmt.Sprintf("cache path %s left out: %s", name, why(err)))
			return nil
		}
		hdr := &tar.Header{Name: name, Mode: int64(fi.Mode().Perm()), ModTime: fi.ModTime().Truncate(time.Second), Format: tar.FormatPAX}
		switch {
		case fi.Mode().Type() == fs.ModeSymlink:
			target, err := ws.Readlink(name)
			if err != nil {
				return err
			}
			if _, err := ws.Resolve(name); err != nil || path.IsAbs(target) {
				note(fmt.Sprintf("cache path %s left out: it is a link that leads outside the workspace", name))
				return nil
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
			st.Links++
			return tw.WriteHeader(hdr)
		case fi.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			st.Dirs++
			entries, err := ws.ReadDir(name)
			if err != nil {
				note(fmt.Sprintf("cache path %s left out: %s", name, why(err)))
				return nil
			}
			for _, e := range entries {
				if err := add(path.Join(name, e.Name())); err != nil {
					return err
				}
			}
			return nil
		case fi.Mode().IsRegular():
			f, err := ws.Open(name)
			if err != nil {
				note(fmt.Sprintf("cache path %s left out: %s", name, why(err)))
				return nil
			}
			defer f.Close()
			hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			n, err := io.CopyBuffer(tw, io.LimitReader(f, fi.Size()), buf)
			if err != nil {
				return fmt.Errorf("pack %s: %w", name, err)
			}
			if n != fi.Size() {
				return fmt.Errorf("pack %s: it changed while it was read", name)
			}
			st.Files++
			st.Bytes += n
			return nil
		}
		note(fmt.Sprintf("cache path %s left out: not a file, directory or link", name))
		return nil
	}
	for _, p := range paths {
		name := path.Clean(strings.TrimPrefix(p, "./"))
		if name == "." || name == ".." || path.IsAbs(name) || strings.HasPrefix(name, "../") {
			note(fmt.Sprintf("cache path %s left out: it is outside the workspace", p))
			continue
		}
		// A directory on the way that is a link leading out ends here.
		if dir := path.Dir(name); dir != "." {
			if _, err := ws.Resolve(dir); err != nil {
				note(fmt.Sprintf("cache path %s left out: %s", p, why(err)))
				continue
			}
		}
		if err := add(name); err != nil {
			tw.Close()
			enc.Close()
			return st, err
		}
	}
	if err := tw.Close(); err != nil {
		enc.Close()
		return st, err
	}
	return st, enc.Close()
}

func why(err error) string {
	if d := confine.Describe(err); d != "" {
		return d
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// UnsafeError is an archive entry refused.
type UnsafeError struct {
	Name   string
	Reason string
}

func (e *UnsafeError) Error() string {
	return fmt.Sprintf("cache entry %q refused: %s", e.Name, e.Reason)
}

// entryName checks and cleans the name of an archive entry.
func entryName(name string) (string, error) {
	clean := path.Clean(strings.TrimSuffix(name, "/"))
	switch {
	case name == "" || len(name) > MaxNameLen || strings.ContainsRune(name, 0):
		return "", &UnsafeError{Name: name, Reason: "not a usable name"}
	case path.IsAbs(name) || strings.HasPrefix(name, `\`):
		return "", &UnsafeError{Name: name, Reason: "an absolute path"}
	case clean == ".." || strings.HasPrefix(clean, "../") || hasDotDot(name):
		return "", &UnsafeError{Name: name, Reason: `it climbs out with ".."`}
	case clean == ".":
		return "", &UnsafeError{Name: name, Reason: "it names the workspace itself"}
	}
	return clean, nil
}

func hasDotDot(name string) bool {
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return true
		}
	}
	return false
}

// fileJob is a file to write, handed to a writer.
type fileJob struct {
	name  string
	mode  fs.FileMode
	mtime time.Time
	data  []byte
}

// smallFile is the largest file written by the writers from memory;
// larger ones are streamed in order.
const smallFile = 1 << 20

// Unpack writes the archive read from r into ws, refusing unsafe entries
// (an *UnsafeError): names that are absolute or climb out, links that
// lead outside, hard links, devices. Files are written by a few writers at
// once; links are made last, so that no link made by the archive is
// followed by a later entry; directories get their modes at the end (an
// archive of read-only directories unpacks).
func Unpack(ws *confine.Dir, r io.Reader) (Stats, error) {
	var st Stats
	dec, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(min(4, runtime.GOMAXPROCS(0))), zstd.WithDecoderLowmem(false))
	if err != nil {
		return st, err
	}
	defer dec.Close()
	tr := tar.NewReader(dec)

	workers := max(2, min(8, runtime.GOMAXPROCS(0)*2))
	jobs := make(chan fileJob, workers*4)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var werr error
	pool := sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				err := writeFile(ws, j.name, j.mode, j.mtime, j.data)
				b := j.data[:0]
				pool.Put(&b)
				if err != nil {
					mu.Lock()
					if werr == nil {
						werr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	finish := func(err error) (Stats, error) {
		close(jobs)
		wg.Wait()
		if err == nil {
			err = werr
		}
		return st, err
	}
	type link struct{ name, target string }
	type dirMode struct {
		name  string
		mode  fs.FileMode
		mtime time.Time
	}
	var links []link
	var dirs []dirMode
	made := map[string]bool{".": true}
	mkdir := func(dir string) error {
		if made[dir] {
			return nil
		}
		if err := ws.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for d := dir; d != "." && !made[d]; d = path.Dir(d) {
			made[d] = true
		}
		return nil
	}
	buf := make([]byte, 256<<10)
	for n := 0; ; n++ {
		if n > MaxEntries {
			return finish(fmt.Errorf("more than %d entries", MaxEntries))
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return finish(fmt.Errorf("read the archive: %w", err))
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return finish(err)
		}
		mode := fs.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := mkdir(name); err != nil {
				return finish(err)
			}
			dirs = append(dirs, dirMode{name, mode, hdr.ModTime})
			st.Dirs++
		case tar.TypeReg, tar.TypeRegA:
			if err := mkdir(path.Dir(name)); err != nil {
				return finish(err)
			}
			st.Files++
			st.Bytes += hdr.Size
			if hdr.Size <= smallFile {
				bp := pool.Get().(*[]byte)
				data := (*bp)[:0]
				if cap(data) < int(hdr.Size) {
					data = make([]byte, 0, hdr.Size)
				}
				data = data[:hdr.Size]
				if _, err := io.ReadFull(tr, data); err != nil {
					return finish(fmt.Errorf("read %s: %w", name, err))
				}
				mu.Lock()
				failed := werr
				mu.Unlock()
				if failed != nil {
					return finish(nil)
				}
				jobs <- fileJob{name: name, mode: mode, mtime: hdr.ModTime, data: data}
				continue
			}
			if err := streamFile(ws, name, mode, hdr.ModTime, tr, buf); err != nil {
				return finish(err)
			}
		case tar.TypeSymlink:
			t := hdr.Linkname
			if t == "" || path.IsAbs(t) || strings.HasPrefix(t, `\`) {
				return finish(&UnsafeError{Name: hdr.Name, Reason: fmt.Sprintf("a link to %q, outside the workspace", t)})
			}
			if rel := path.Join(path.Dir(name), t); rel == ".." || strings.HasPrefix(rel, "../") {
				return finish(&UnsafeError{Name: hdr.Name, Reason: fmt.Sprintf("a link to %q, outside the workspace", t)})
			}
			links = append(links, link{name, t})
			st.Links++
		case tar.TypeXGlobalHeader:
		case tar.TypeLink:
			return finish(&UnsafeError{Name: hdr.Name, Reason: "a hard link"})
		default:
			return finish(&UnsafeError{Name: hdr.Name, Reason: fmt.Sprintf("not a file, directory or link (type %q)", hdr.Typeflag)})
		}
	}
	if _, err := finish(nil); err != nil {
		return st, err
	}
	for _, l := range links {
		if err := mkdir(path.Dir(l.name)); err != nil {
			return st, err
		}
		_ = ws.Remove(l.name)
		if err := ws.Symlink(l.target, l.name); err != nil {
			if errors.Is(err, confine.ErrOutside) {
				return st, &UnsafeError{Name: l.name, Reason: fmt.Sprintf("a link to %q, outside the workspace", l.target)}
			}
			return st, err
		}
	}
	// Deepest first: a read-only parent is set after its children.
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].name > dirs[j].name })
	for _, d := range dirs {
		if d.mode&0o700 != 0o700 {
			if err := ws.Chmod(d.name, d.mode); err != nil {
				return st, err
			}
		}
	}
	return st, nil
}

// writeFile writes a small file whole.
func writeFile(ws *confine.Dir, name string, mode fs.FileMode, mtime time.Time, data []byte) error {
	f, err := ws.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode|0o200)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	return closeFile(f, name, mode, mtime, err)
}

// streamFile writes a large file from the archive.
func streamFile(ws *confine.Dir, name string, mode fs.FileMode, mtime time.Time, r io.Reader, buf []byte) error {
	f, err := ws.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode|0o200)
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(f, r, buf)
	return closeFile(f, name, mode, mtime, err)
}

// closeFile sets a written file's mode and time through its descriptor
// (no name is resolved again) and closes it.
func closeFile(f *os.File, name string, mode fs.FileMode, mtime time.Time, err error) error {
	fd := int(f.Fd())
	if err == nil && mode&0o200 == 0 {
		err = unix.Fchmod(fd, uint32(mode))
	}
	if err == nil && !mtime.IsZero() {
		tv := unix.NsecToTimeval(mtime.UnixNano())
		err = unix.Futimes(fd, []unix.Timeval{tv, tv})
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
