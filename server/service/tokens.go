package service

import (
	"context"
	"errors"
	"regexp"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	secretv1 "github.com/go-arcade/arcade/api/secret/v1"
	"github.com/go-arcade/arcade/server/audit"
	"github.com/go-arcade/arcade/server/auth"
	"github.com/go-arcade/arcade/server/peers"
	"github.com/go-arcade/arcade/server/store"
)

// TokenServer implements secretv1.TokenServiceServer: named API tokens.
type TokenServer struct {
	secretv1.UnimplementedTokenServiceServer
	s *Service
}

// TokenServer returns the TokenService implementation.
func (s *Service) TokenServer() *TokenServer { return &TokenServer{s: s} }

// Bounds of named tokens.
const (
	maxTokenOwner  = 128
	maxTokenExpiry = 10 * 365 * 24 * time.Hour
)

var tokenName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func tokenScope(s secretv1.TokenScope) (auth.Scope, error) {
	switch s {
	case secretv1.TokenScope_TOKEN_SCOPE_READ:
		return auth.Read, nil
	case secretv1.TokenScope_TOKEN_SCOPE_WRITE:
		return auth.Write, nil
	case secretv1.TokenScope_TOKEN_SCOPE_ADMIN:
		return auth.Admin, nil
	}
	return 0, invalid("scope", "must be read, write or admin")
}

func tokenScopeProto(s string) secretv1.TokenScope {
	switch s {
	case "read":
		return secretv1.TokenScope_TOKEN_SCOPE_READ
	case "write":
		return secretv1.TokenScope_TOKEN_SCOPE_WRITE
	case "admin":
		return secretv1.TokenScope_TOKEN_SCOPE_ADMIN
	}
	return secretv1.TokenScope_TOKEN_SCOPE_UNSPECIFIED
}

func tokenProto(t *store.APIToken, now time.Time) *secretv1.Token {
	return &secretv1.Token{
		Id: t.ID, Name: t.Name, Owner: t.Owner, Scope: tokenScopeProto(t.Scope), CreatedAt: ts(t.CreatedAt),
		ExpiresAt: ts(t.ExpiresAt), LastUsedAt: ts(t.LastUsedAt), RevokedAt: ts(t.RevokedAt),
		CreatedBy: t.CreatedBy, RevokedBy: t.RevokedBy, Active: t.Active(now),
	}
}

// CreateToken implements TokenService.CreateToken.
func (tsrv *TokenServer) CreateToken(ctx context.Context, req *secretv1.CreateTokenRequest) (*secretv1.CreateTokenResponse, error) {
	s := tsrv.s
	if !tokenName.MatchString(req.GetName()) {
		return nil, invalid("name", "want 1 to 64 letters, digits, '.', '_' or '-', got %q", req.GetName())
	}
	if len(req.GetOwner()) > maxTokenOwner {
		return nil, invalid("owner", "longer than %d bytes", maxTokenOwner)
	}
	scope, err := tokenScope(req.GetScope())
	if err != nil {
		return nil, err
	}
	now := s.now()
	t := &store.APIToken{ID: newID(), Name: req.GetName(), Owner: req.GetOwner(), Scope: scope.String(), CreatedAt: now, CreatedBy: actor(ctx)}
	if d := req.GetExpiresIn(); d != nil {
		if err := d.CheckValid(); err != nil {
			return nil, invalid("expires_in", "%v", err)
		}
		switch exp := d.AsDuration(); {
		case exp < 0:
			return nil, invalid("expires_in", "must not be negative")
		case exp > maxTokenExpiry:
			return nil, invalid("expires_in", "at most %s", maxTokenExpiry)
		case exp > 0:
			t.ExpiresAt = now.Add(exp)
		}
	}
	secret := auth.NewNamedToken()
	t.Hash = auth.Hash(secret)
	if err := s.store.CreateToken(ctx, t); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, grpcstatus.Errorf(codes.AlreadyExists, "name: a token named %q exists", t.Name)
		}
		return nil, storeError(err, "token")
	}
	s.log.Info("API token created", "token", t.Name, "owner", t.Owner, "scope", t.Scope, "expires_at", t.ExpiresAt, "by", t.CreatedBy)
	return &secretv1.CreateTokenResponse{Token: tokenProto(t, now), Secret: secret}, nil
}

// ListTokens implements TokenService.ListTokens.
func (tsrv *TokenServer) ListTokens(ctx context.Context, req *secretv1.ListTokensRequest) (*secretv1.ListTokensResponse, error) {
	s := tsrv.s
	p, err := page(req.GetPageSize(), req.GetPageToken(), "", []string{"name"}, store.Order{Column: "name"})
	if err != nil {
		return nil, err
	}
	now := s.now()
	list, total, err := s.store.ListTokens(ctx, req.GetIncludeInactive(), now, p)
	if err != nil {
		return nil, storeError(err, "tokens")
	}
	resp := &secretv1.ListTokensResponse{TotalSize: int32(total)}
	page := newPageBytes()
	for _, t := range list {
		m := tokenProto(t, now)
		if !page.take(m) {
			break
		}
		resp.Tokens = append(resp.Tokens, m)
	}
	resp.NextPageToken = nextToken(p, len(resp.Tokens), total)
	return resp, nil
}

// RevokeToken implements TokenService.RevokeToken: every call with the
// token reads it, so every replica refuses it from now on; its open streams
// are cut here and, told through the database, on the other replicas.
func (tsrv *TokenServer) RevokeToken(ctx context.Context, req *secretv1.RevokeTokenRequest) (*secretv1.RevokeTokenResponse, error) {
	s := tsrv.s
	if err := requireID("token_id", req.GetTokenId()); err != nil {
		return nil, err
	}
	now := s.now()
	t, err := s.store.RevokeToken(ctx, req.GetTokenId(), actor(ctx), now)
	if err != nil {
		return nil, storeError(err, "token "+req.GetTokenId())
	}
	if s.cutter != nil {
		s.cutter.Revoked(t.ID)
	}
	if s.peers != nil {
		s.peers.Send(ctx, peers.TokenRevoked, t.ID)
	}
	s.log.Warn("API token revoked", "token", t.Name, "by", t.RevokedBy)
	return &secretv1.RevokeTokenResponse{Token: tokenProto(t, now)}, nil
}

// AuditServer implements secretv1.AuditServiceServer.
type AuditServer struct {
	secretv1.UnimplementedAuditServiceServer
	s *Service
}

// AuditServer returns the AuditService implementation.
func (s *Service) AuditServer() *AuditServer { return &AuditServer{s: s} }

// UseAuditLog makes ListAuditEvents include what this replica recorded an
// instant ago. Call it before serving.
func (s *Service) UseAuditLog(l *audit.Log) { s.auditLog = l }

// ListAuditEvents implements AuditService.ListAuditEvents.
func (as *AuditServer) ListAuditEvents(ctx context.Context, req *secretv1.ListAuditEventsRequest) (*secretv1.ListAuditEventsResponse, error) {
	s := as.s
	p, err := page(req.GetPageSize(), req.GetPageToken(), "", []string{"time"}, store.Order{Column: "time", Desc: true})
	if err != nil {
		return nil, err
	}
	f := store.AuditFilter{Actor: req.GetActor(), Method: req.GetMethod()}
	if t := req.GetSince(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, invalid("since", "%v", err)
		}
		f.Since = t.AsTime()
	}
	if len(f.Actor) > 256 || len(f.Method) > 256 {
		return nil, invalid("actor", "actor and method filters are at most 256 bytes")
	}
	if s.auditLog != nil {
		// What this replica recorded before the call is in the answer.
		if err := s.auditLog.Flush(ctx); err != nil {
			return nil, storeError(err, "audit log")
		}
	}
	list, total, err := s.store.ListAuditEvents(ctx, f, p)
	if err != nil {
		return nil, storeError(err, "audit log")
	}
	resp := &secretv1.ListAuditEventsResponse{TotalSize: int32(total)}
	page := newPageBytes()
	for _, e := range list {
		m := &secretv1.AuditEvent{Id: e.ID, Time: ts(e.At), Actor: e.Actor, Method: e.Method,
			Resource: e.Resource, Peer: e.Peer, Outcome: e.Outcome, Message: e.Message}
		if !page.take(m) {
			break
		}
		resp.Events = append(resp.Events, m)
	}
	resp.NextPageToken = nextToken(p, len(resp.Events), total)
	return resp, nil
}

// NamedTokens adapts the store to auth.TokenStore.
type NamedTokens struct{ Store *store.Store }

// TokenByHash implements auth.TokenStore.
func (n NamedTokens) TokenByHash(ctx context.Context, hash string) (*auth.NamedToken, error) {
	t, err := n.Store.TokenByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, auth.ErrNoToken
	}
	if err != nil {
		return nil, err
	}
	scope, err := auth.ParseScope(t.Scope)
	if err != nil {
		return nil, err
	}
	return &auth.NamedToken{ID: t.ID, Name: t.Name, Scope: scope, ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt}, nil
}

// TouchToken implements auth.TokenStore.
func (n NamedTokens) TouchToken(ctx context.Context, id string, at time.Time) error {
	return n.Store.TouchToken(ctx, id, at)
}
