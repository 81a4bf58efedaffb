package auth

import (
	"context"
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
	// Admin: also revoke agents, change agents' labels, reload plugins, and
	// manage secrets, named tokens, the audit log and trust.
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
// Name names it in the audit log.
type APIToken struct {
	Hash  string
	Scope Scope
	Name  string
}

// adminMethods need the admin scope: agents, plugins, secrets, tokens, the
// audit log and trust.
var adminMethods = map[string]bool{
	"RevokeAgent":      true,
	"UpdateLabels":     true,
	"ReloadPlugin":     true,
	"CreateSecret":     true,
	"UpdateSecret":     true,
	"DeleteSecret":     true,
	"CreateToken":      true,
	"ListTokens":       true,
	"RevokeToken":      true,
	"ListAuditEvents":  true,
	"SetAgentTrust":    true,
	"SetTrustedLabels": true,
	"SetPipelineTrust": true,
}

// NeedsWrite reports whether a method changes anything (what the audit log
// records): any method but the reads (Get*, List*, Stream*, Explain*,
// Download*), whatever scope they need.
func NeedsWrite(method string) bool { return !isRead(path.Base(method)) }

func isRead(name string) bool {
	for _, p := range []string{"Get", "List", "Stream", "Explain", "Download"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// scopeFor is the scope an API client needs for a method: reading methods
// (downloads too) need read, admin methods admin, the rest write.
func scopeFor(method string) Scope {
	name := path.Base(method)
	switch {
	case adminMethods[name]:
		return Admin
	case isRead(name):
		return Read
	}
	return Write
}

// apiClient returns the identity of an API token, of zero Scope when it is
// no API token; a named token revoked or expired is refused with the reason.
func (a *Authenticator) apiClient(ctx context.Context, token string) (Identity, error) {
	h := Hash(token)
	id := Identity{Kind: APIClient, Client: h[:16]}
	if equal(token, a.api) {
		id.Scope, id.Name = Admin, "api_token"
		return id, nil
	}
	for i, t := range a.tokens {
		if subtle.ConstantTimeCompare([]byte(h), []byte(t.Hash)) == 1 {
			id.Scope, id.Name = t.Scope, t.Name
			if id.Name == "" {
				id.Name = fmt.Sprintf("api_tokens[%d]", i)
			}
			return id, nil
		}
	}
	if a.named == nil || !strings.HasPrefix(token, NamedTokenPrefix) {
		return Identity{}, nil
	}
	return a.namedClient(ctx, h, id)
}

// allow checks a caller's scope against a method.
func (a *Authenticator) allow(ctx context.Context, id Identity, method string) error {
	if need := scopeFor(method); id.Scope < need {
		err := status.Errorf(codes.PermissionDenied, "a %s token may not call %s (needs %s)", id.Scope, path.Base(method), need)
		if a.onDenied != nil {
			a.onDenied(ctx, id, method, err)
		}
		return err
	}
	return nil
}
