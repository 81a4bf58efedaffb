// Package gitref is the pure part of sources: which repository URLs a
// source may name, ref names, and the globs that filter branches, tags and
// changed paths.
package gitref

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// MaxPattern bounds a glob.
const MaxPattern = 256

// Glob is a compiled pattern over branch names, tag names or paths: "*"
// matches within one segment (no "/"), "**" across segments ("src/**"
// matches every file under src, "**/*.go" every Go file), "?" one
// character of a segment, "[a-z]" one of a class. A pattern without any of
// these matches the name exactly.
type Glob struct {
	text string
	re   *regexp.Regexp
}

// Compile compiles a glob; an unclosed class, an empty pattern or one too
// long fails.
func Compile(pattern string) (*Glob, error) {
	switch {
	case pattern == "":
		return nil, errors.New("is empty")
	case len(pattern) > MaxPattern:
		return nil, fmt.Errorf("is longer than %d bytes", MaxPattern)
	case strings.ContainsAny(pattern, "\x00\n"):
		return nil, errors.New("holds a control character")
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch c {
		case '*':
			if i+1 < len(pattern) && pattern[i+1] == '*' {
				i++
				if i+1 < len(pattern) && pattern[i+1] == '/' {
					i++
					b.WriteString("(?:.*/)?") // "**/" also matches nothing
				} else {
					b.WriteString(".*")
				}
			} else {
				b.WriteString("[^/]*")
			}
		case '?':
			b.WriteString("[^/]")
		case '[':
			end := strings.IndexByte(pattern[i+1:], ']')
			if end < 0 || (end == 0 && !strings.Contains(pattern[i+2:], "]")) {
				return nil, fmt.Errorf("%q: unclosed [ class", pattern)
			}
			class := pattern[i+1 : i+1+end]
			if class == "" || class == "!" || class == "^" {
				return nil, fmt.Errorf("%q: empty [] class", pattern)
			}
			if class[0] == '!' {
				class = "^" + class[1:]
			}
			b.WriteString("[" + strings.ReplaceAll(class, `\`, `\\`) + "]")
			i += end + 1
		case '\\':
			if i+1 == len(pattern) {
				return nil, fmt.Errorf("%q: ends with \\", pattern)
			}
			i++
			b.WriteString(regexp.QuoteMeta(string(pattern[i])))
		case ']':
			return nil, fmt.Errorf("%q: ] without [", pattern)
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("%q: %v", pattern, err)
	}
	return &Glob{text: pattern, re: re}, nil
}

// Match reports whether name matches.
func (g *Glob) Match(name string) bool { return g.re.MatchString(name) }

func (g *Glob) String() string { return g.text }

// AnyMatch reports whether name matches one of patterns (those that do not
// compile match nothing; Validate refuses them first). No pattern at all
// matches every name.
func AnyMatch(patterns []string, name string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if g, err := Compile(p); err == nil && g.Match(name) {
			return true
		}
	}
	return false
}

// CheckRefName accepts a branch or tag name as git does (git
// check-ref-format, the common rules).
func CheckRefName(name string) error {
	switch {
	case name == "":
		return errors.New("is empty")
	case len(name) > 255:
		return errors.New("is longer than 255 bytes")
	case strings.HasPrefix(name, "-") || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") ||
		strings.HasSuffix(name, ".") || strings.HasSuffix(name, ".lock") || strings.Contains(name, "..") ||
		strings.Contains(name, "//") || strings.Contains(name, "@{") || name == "@":
		return fmt.Errorf("%q is not a valid ref name", name)
	case strings.ContainsFunc(name, func(r rune) bool {
		return r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r)
	}):
		return fmt.Errorf("%q holds a character git refuses in ref names", name)
	}
	return nil
}
