package confine

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
)

// WalkFunc is called by Walk for each file and directory it reaches, by the
// name it was reached by (slash-separated, relative to the Dir), with its
// description (links followed). When err is not nil, name was not entered
// and info is nil: a link that leads outside (ErrOutside), a linked
// directory that contains the link (ErrLoop), or an error reading it.
//
// Returning fs.SkipDir for a directory skips its content; fs.SkipAll ends
// the walk with no error; any other error ends it with that error.
type WalkFunc func(name string, info fs.FileInfo, err error) error

// Walk walks the tree at name in lexical order. Links that stay inside are
// followed: a file reached through a link is reported under the link's
// name, and so is the content of a linked directory. Links that lead
// outside, and linked directories that would loop, are reported with their
// error and not entered.
func (d *Dir) Walk(name string, fn WalkFunc) error {
	name = path.Clean(clean(name))
	info, err := d.Stat(name)
	if err != nil {
		err = fn(name, nil, err)
	} else {
		err = d.walk(name, info, nil, fn)
	}
	if err == fs.SkipDir || err == fs.SkipAll {
		return nil
	}
	return err
}

func (d *Dir) walk(name string, info fs.FileInfo, ancestors []fs.FileInfo, fn WalkFunc) error {
	err := fn(name, info, nil)
	if !info.IsDir() {
		if err == fs.SkipDir {
			return nil
		}
		return err
	}
	if err != nil {
		return err
	}
	entries, err := d.ReadDir(name)
	if err != nil {
		return fn(name, nil, err)
	}
	ancestors = append(ancestors, info)
	for _, e := range entries {
		child := path.Join(name, e.Name())
		var ci fs.FileInfo
		if e.Type() == fs.ModeSymlink {
			ci, err = d.Stat(child)
			if err == nil && ci.IsDir() && slices.ContainsFunc(ancestors, func(a fs.FileInfo) bool { return os.SameFile(a, ci) }) {
				ci, err = nil, pathErr("walk", child, ErrLoop)
			}
		} else {
			ci, err = e.Info()
		}
		if err != nil {
			err = fn(child, nil, err)
		} else {
			err = d.walk(child, ci, ancestors, fn)
		}
		if err == fs.SkipDir {
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Glob returns the names matching pattern (path.Match syntax, components
// separated by "/", relative to the Dir), sorted, without duplicates.
// Directories on the way are read through the Dir: one that leads outside
// is not searched and is reported to skipped (which may be nil) with its
// error, and so is a final name that cannot be described for a reason other
// than not existing. Matches are names, not checked any further: a match
// may be a link leading outside (Walk reports it).
func (d *Dir) Glob(pattern string, skipped func(name string, err error)) ([]string, error) {
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, err
	}
	report := func(name string, err error) {
		if skipped != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			skipped(name, err)
		}
	}
	if path.IsAbs(pattern) {
		report(pattern, pathErr("glob", pattern, ErrOutside))
		return nil, nil
	}
	parts := strings.Split(path.Clean(pattern), "/")
	cur := []string{"."}
	for i, comp := range parts {
		last := i == len(parts)-1
		var next []string
		for _, base := range cur {
			if !hasMeta(comp) {
				cand := path.Join(base, comp)
				if !last {
					next = append(next, cand) // read, and checked, at the next level
					continue
				}
				if _, err := d.Lstat(cand); err != nil {
					report(cand, err)
					continue
				}
				next = append(next, cand)
				continue
			}
			entries, err := d.ReadDir(base)
			if err != nil {
				report(base, err)
				continue
			}
			for _, e := range entries {
				if ok, _ := path.Match(comp, e.Name()); ok {
					next = append(next, path.Join(base, e.Name()))
				}
			}
		}
		cur = next
	}
	slices.Sort(cur)
	return slices.Compact(cur), nil
}

func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }
