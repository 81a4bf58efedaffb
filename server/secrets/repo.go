package secrets

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
)

// maxRepoURL bounds a repository URL.
const maxRepoURL = 2048

// NormalizeRepo turns the ways a repository is written into one key for
// source-scoped secrets: "host/path", the host lower-cased (with its port
// when not the scheme's default), without scheme, user, trailing slash or
// ".git". https://User@GitHub.com/org/app.git, git@github.com:org/app and
// ssh://git@github.com/org/app/ all give github.com/org/app.
func NormalizeRepo(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	switch {
	case s == "":
		return "", errors.New("repository URL is empty")
	case len(s) > maxRepoURL:
		return "", fmt.Errorf("repository URL is longer than %d bytes", maxRepoURL)
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == ' ' }):
		return "", errors.New("repository URL holds spaces or control characters")
	}
	var host, p string
	if scheme, _, ok := strings.Cut(s, "://"); ok {
		u, err := url.Parse(s)
		if err != nil {
			return "", fmt.Errorf("repository URL: %w", err)
		}
		switch strings.ToLower(scheme) {
		case "https", "http", "ssh", "git":
		case "file":
			// A repository on the server's own disk: "file" stands for
			// its host.
			if u.Host != "" && u.Host != "localhost" {
				return "", errors.New("repository URL: a file:// URL names no host")
			}
			u.Host = "file"
		default:
			return "", fmt.Errorf("repository URL: scheme %q (want https, http, ssh, git or file)", scheme)
		}
		host = strings.ToLower(u.Hostname())
		if port := u.Port(); port != "" && port != defaultPort(strings.ToLower(scheme)) {
			host += ":" + port
		}
		p = u.Path
	} else if at, colon := strings.Index(s, "@"), strings.Index(s, ":"); colon > 0 && (at < 0 || at < colon) && !strings.Contains(s[:colon], "/") {
		// scp-like: [user@]host:path
		host = strings.ToLower(s[at+1 : colon])
		p = s[colon+1:]
	} else {
		// host/path
		h, rest, _ := strings.Cut(s, "/")
		host, p = strings.ToLower(h), rest
	}
	if host == "" {
		return "", errors.New("repository URL names no host")
	}
	p = strings.Trim(p, "/")
	p = strings.TrimSuffix(p, ".git")
	if p == "" {
		return "", errors.New("repository URL names no repository path")
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("repository URL path %q has an empty, . or .. segment", p)
		}
	}
	return host + "/" + path.Clean(p), nil
}

func defaultPort(scheme string) string {
	switch scheme {
	case "https":
		return "443"
	case "http":
		return "80"
	case "ssh":
		return "22"
	case "git":
		return "9418"
	}
	return ""
}
