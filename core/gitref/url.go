package gitref

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// MaxURL bounds a repository URL.
const MaxURL = 2048

// CheckURL accepts the repository URLs a source may name: https:// and
// http://, ssh:// and scp-like user@host:path, and file:// (an absolute
// path on the machine that runs git). A password in the URL is refused:
// credentials belong in a stored secret.
func CheckURL(raw string) error {
	s := strings.TrimSpace(raw)
	switch {
	case s == "":
		return errors.New("is empty")
	case len(s) > MaxURL:
		return fmt.Errorf("is longer than %d bytes", MaxURL)
	case s != raw:
		return errors.New("has leading or trailing spaces")
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == ' ' }):
		return errors.New("holds spaces or control characters")
	case strings.HasPrefix(s, "-"):
		return errors.New("begins with '-'")
	}
	scheme, _, ok := strings.Cut(s, "://")
	if !ok {
		// scp-like: [user@]host:path
		at, colon := strings.Index(s, "@"), strings.Index(s, ":")
		if colon > 0 && (at < 0 || at < colon) && !strings.Contains(s[:colon], "/") && colon+1 < len(s) {
			return nil
		}
		return fmt.Errorf("%q is not a URL: want https://, ssh://, user@host:path or file://", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("does not parse: %v", err)
	}
	switch strings.ToLower(scheme) {
	case "https", "http", "ssh":
		if u.Host == "" {
			return errors.New("names no host")
		}
		if _, has := u.User.Password(); has {
			return errors.New("holds a password: put the credential in a stored secret and name it in the source's credential")
		}
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return errors.New("file:// URL names a host: want file:///absolute/path")
		}
		if !strings.HasPrefix(u.Path, "/") {
			return errors.New("file:// URL needs an absolute path")
		}
	default:
		return fmt.Errorf("scheme %q is not supported: want https, http, ssh or file", scheme)
	}
	if strings.Trim(u.Path, "/") == "" {
		return errors.New("names no repository path")
	}
	return nil
}

// IsSSH reports whether a (checked) URL is reached over SSH.
func IsSSH(raw string) bool {
	if scheme, _, ok := strings.Cut(raw, "://"); ok {
		return strings.EqualFold(scheme, "ssh")
	}
	return true // scp-like
}

// IsFile reports whether a (checked) URL is a file:// URL.
func IsFile(raw string) bool {
	return strings.HasPrefix(strings.ToLower(raw), "file://")
}
