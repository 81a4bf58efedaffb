package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// NamedTokenPrefix starts every named token, so that a token found in a log
// or a repository is recognisable (and the server looks up only such
// tokens in the database).
const NamedTokenPrefix = "arc_"

// NewNamedToken returns a fresh named token: the prefix and 32 random
// bytes in base64url.
func NewNamedToken() string {
	b := make([]byte, 32)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails
	return NamedTokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// NamedToken is a named API token as the authenticator needs it.
type NamedToken struct {
	ID, Name  string
	Scope     Scope
	ExpiresAt time.Time // zero: never
	RevokedAt time.Time // zero: not revoked
}

// ErrNoToken is returned by a TokenStore for a hash no token has.
var ErrNoToken = errors.New("no such token")

// TokenStore finds named tokens by the sha256 of the token and records
// their use.
type TokenStore interface {
	TokenByHash(ctx context.Context, hash string) (*NamedToken, error)
	TouchToken(ctx context.Context, id string, at time.Time) error
}

// touchEvery bounds how often a token's last use is written (per replica).
const touchEvery = time.Minute

// UseNamedTokens accepts named tokens from ts. Every call with one reads it
// from ts (an indexed lookup), so a revoked or expired token is refused at
// once on every replica sharing the database. Call it before serving.
func (a *Authenticator) UseNamedTokens(ts TokenStore) {
	a.named = ts
	a.touched = map[string]time.Time{}
}

func (a *Authenticator) namedClient(ctx context.Context, hash string, id Identity) (Identity, error) {
	t, err := a.named.TokenByHash(ctx, hash)
	switch {
	case errors.Is(err, ErrNoToken):
		return Identity{}, nil
	case err != nil:
		return Identity{}, status.Errorf(codes.Unavailable, "check API token: %v", err)
	}
	now := time.Now()
	if !t.RevokedAt.IsZero() {
		return Identity{}, status.Errorf(codes.Unauthenticated, "API token %q was revoked", t.Name)
	}
	if !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt) {
		return Identity{}, status.Errorf(codes.Unauthenticated, "API token %q expired at %s", t.Name, t.ExpiresAt.UTC().Format(time.RFC3339))
	}
	id.Scope, id.Name, id.TokenID = t.Scope, t.Name, t.ID
	a.touch(t.ID, now)
	if !t.ExpiresAt.IsZero() {
		a.streams.expiry(t.ID, t.ExpiresAt)
	}
	return id, nil
}

// touch records a token's use, at most once per touchEvery, off the call's
// path.
func (a *Authenticator) touch(id string, now time.Time) {
	a.touchMu.Lock()
	last, ok := a.touched[id]
	due := !ok || now.Sub(last) >= touchEvery
	if due {
		if len(a.touched) > 10000 {
			clear(a.touched)
		}
		a.touched[id] = now
	}
	a.touchMu.Unlock()
	if !due {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.named.TouchToken(ctx, id, now.UTC()) // a lost touch only delays last_used_at
	}()
}

// Revoked ends the open streams of a named token (revoked here or, told
// through the database, on another replica). New calls with it are refused
// anyway: every call reads the token.
func (a *Authenticator) Revoked(tokenID string) { a.streams.cut(tokenID) }

// streamSet tracks the open streams of named tokens.
type streamSet struct {
	mu      sync.Mutex
	byToken map[string]map[*streamEntry]struct{}
	expires map[string]time.Time
}

type streamEntry struct{ cancel context.CancelCauseFunc }

var errRevoked = status.Error(codes.Unauthenticated, "API token revoked")

// watch returns ctx ending when the token is revoked (or expires), and a
// function to call when the stream ends.
func (s *streamSet) watch(ctx context.Context, tokenID string) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := func() {}
	s.mu.Lock()
	if exp, ok := s.expires[tokenID]; ok {
		var c context.CancelFunc
		ctx, c = context.WithDeadline(ctx, exp)
		stop = c
	}
	if s.byToken == nil {
		s.byToken = map[string]map[*streamEntry]struct{}{}
	}
	e := &streamEntry{cancel: cancel}
	if s.byToken[tokenID] == nil {
		s.byToken[tokenID] = map[*streamEntry]struct{}{}
	}
	s.byToken[tokenID][e] = struct{}{}
	s.mu.Unlock()
	return ctx, func() {
		s.mu.Lock()
		delete(s.byToken[tokenID], e)
		if len(s.byToken[tokenID]) == 0 {
			delete(s.byToken, tokenID)
			delete(s.expires, tokenID)
		}
		s.mu.Unlock()
		stop()
		cancel(nil)
	}
}

// expiry notes when a token expires, for the streams it opens.
func (s *streamSet) expiry(tokenID string, at time.Time) {
	s.mu.Lock()
	if s.expires == nil {
		s.expires = map[string]time.Time{}
	}
	if len(s.expires) > 10000 {
		clear(s.expires)
	}
	s.expires[tokenID] = at
	s.mu.Unlock()
}

func (s *streamSet) cut(tokenID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for e := range s.byToken[tokenID] {
		e.cancel(errRevoked)
	}
}
