package auth

import (
	"crypto/subtle"
	"fmt"
	"path"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Scope is what an API token may do.
type Scope int

const (
	// Read: look (Get*, List*, Stream*, Explain*, Download*).
	Read Scope = iota + 1
	// Write: also create, change, cancel, retry, trigger, stop, call plugins.
	Write
	// Admin: also revoke agents, change agents' labels, reload plugins.
	Admin
)

// ParseScope reads "read", "write" or "admin".
func ParseScope(s string) (Scope, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "read":
		return Read, nil
	case "write":
		return Write, nil
	case "admin":
		return Admin, nil
	}
	return 0, fmt.Errorf("unknown token scope %q (want read, write or admin)", s)
}

func (s Scope) String() string {
	switch s {
	case Read:
		return "read"
	case Write:
		return "write"
	case Admin:
		return "admin"
	}
	return "none"
}

// APIToken is one API token: its sha256 (hex, as Hash returns it) and its
// scope. Tokens are kept hashed; the plain token never needs to be stored.
type APIToken struct {
	Hash  string
	Scope Scope
}

// adminMethods need the admin scope.
var adminMethods = map[string]bool{
	"RevokeAgent":  true,
	"UpdateLabels": true,
	"ReloadPlugin": true,
}

// scopeFor is the scope an API client needs for a method: reading methods
// (downloads too) need read, admin methods admin, the rest write.
func scopeFor(method string) Scope {
	name := path.Base(method)
	switch {
	case adminMethods[name]:
		return Admin
	case strings.HasPrefix(name, "Get"), strings.HasPrefix(name, "List"), strings.HasPrefix(name, "Stream"),
		strings.HasPrefix(name, "Explain"), strings.HasPrefix(name, "Download"):
		return Read
	}
	return Write
}

// apiScope returns the scope of an API token, 0 when it is none of them.
func (a *Authenticator) apiScope(token string) Scope {
	if equal(token, a.api) {
		return Admin
	}
	h := Hash(token)
	for _, t := range a.tokens {
		if subtle.ConstantTimeCompare([]byte(h), []byte(t.Hash)) == 1 {
			return t.Scope
		}
	}
	return 0
}

// allow checks a scope against a method.
func allow(scope Scope, method string) error {
	if need := scopeFor(method); scope < need {
		return status.Errorf(codes.PermissionDenied, "a %s token may not call %s (needs %s)", scope, path.Base(method), need)
	}
	return nil
}
