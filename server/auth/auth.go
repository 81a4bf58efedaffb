// Package auth checks the bearer tokens of gRPC calls: the shared
// registration token (AgentService.Register), per-agent tokens (the rest of
// the agent's calls) and the API token (people and tools).
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Kind is who a caller is.
type Kind int

const (
	// Anonymous callers may only reach open methods (health, reflection).
	Anonymous Kind = iota
	// Registrar holds the registration token.
	Registrar
	// AgentCaller holds a per-agent token.
	AgentCaller
	// APIClient holds the API token.
	APIClient
)

// Identity is the authenticated caller of a request.
type Identity struct {
	Kind    Kind
	AgentID string
	// Client tells API clients apart (a prefix of their token's hash).
	Client string
	// Scope is what an API client's token allows.
	Scope Scope
	// Name names an API client's token for people (the audit log): a
	// named token's name, "api_token" for the admin token of server.yaml,
	// the name given to one of its api_tokens or "api_tokens[N]".
	Name string
	// TokenID is the id of a named token, "" for server.yaml's tokens.
	TokenID string
}

type identityKey struct{}

// FromContext returns the caller's identity.
func FromContext(ctx context.Context) Identity {
	id, _ := ctx.Value(identityKey{}).(Identity)
	return id
}

// WithIdentity returns ctx carrying id (for in-process callers and tests).
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// AgentLookup finds the agent id holding a token hash; it returns an error
// when no agent holds it, one that wraps ErrNoAnswer when it could not tell
// (the database is down).
type AgentLookup func(ctx context.Context, tokenHash string) (string, error)

// ErrNoAnswer marks a lookup that could not be done: the call is answered
// Unavailable (retry), not Unauthenticated (register again).
var ErrNoAnswer = errors.New("cannot check the token now")

// Authenticator checks tokens.
type Authenticator struct {
	registration string
	api          string
	lookup       AgentLookup

	mu    sync.Mutex
	cache map[string]cached // token hash → agent

	requireCerts bool
	tokens       []APIToken // scoped API tokens, besides the admin token api

	named    TokenStore // named tokens; nil: none
	streams  streamSet  // open streams of named tokens, cut on revocation
	touchMu  sync.Mutex
	touched  map[string]time.Time // token id → last use recorded
	onDenied func(ctx context.Context, id Identity, method string, err error)
}

// AddAPITokens accepts more API tokens, each limited to its scope.
func (a *Authenticator) AddAPITokens(tokens ...APIToken) { a.tokens = append(a.tokens, tokens...) }

// OnDenied sets a function called when a known API client is refused a
// method its scope does not allow (the audit log records it). Set it
// before serving.
func (a *Authenticator) OnDenied(fn func(ctx context.Context, id Identity, method string, err error)) {
	a.onDenied = fn
}

// RequireAgentCerts makes agent calls (registration included) need a client
// certificate the TLS layer verified, on top of their token.
func (a *Authenticator) RequireAgentCerts() { a.requireCerts = true }

// verifiedPeer reports whether the caller showed a client certificate that
// the TLS layer verified.
func verifiedPeer(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	return ok && len(info.State.VerifiedChains) > 0
}

type cached struct {
	agentID string
	until   time.Time
}

// New returns an authenticator accepting the given registration and API
// tokens, and per-agent tokens found by lookup.
func New(registrationToken, apiToken string, lookup AgentLookup) *Authenticator {
	return &Authenticator{registration: registrationToken, api: apiToken, lookup: lookup, cache: make(map[string]cached)}
}

// NewToken returns a fresh random token.
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// Hash returns the form in which agent tokens are stored.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Forget drops cached lookups for an agent (after it registered again or
// unregistered).
func (a *Authenticator) Forget(agentID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for h, c := range a.cache {
		if c.agentID == agentID {
			delete(a.cache, h)
		}
	}
}

// access is who may call a method.
type access int

const (
	open access = iota
	registrarOnly
	agentOnly
	apiOnly
	agentOrAPI
)

func accessFor(method string) access {
	switch {
	case strings.HasPrefix(method, "/grpc.health.v1.Health/"),
		strings.HasPrefix(method, "/grpc.reflection."):
		return open
	case method == "/arcade.agent.v1.AgentService/Register":
		return registrarOnly
	case method == "/arcade.agent.v1.AgentService/GetAgent",
		method == "/arcade.agent.v1.AgentService/ListAgents",
		method == "/arcade.agent.v1.AgentService/RevokeAgent":
		return apiOnly
	case method == "/arcade.agent.v1.AgentService/UpdateLabels":
		return agentOrAPI
	case strings.HasPrefix(method, "/arcade.agent.v1.AgentService/"),
		method == "/arcade.job.v1.StreamService/AgentChannel",
		method == "/arcade.job.v1.StreamService/UploadJobLog":
		return agentOnly
	}
	return apiOnly
}

// Authenticate checks the bearer token of a call to method.
func (a *Authenticator) Authenticate(ctx context.Context, method string) (context.Context, error) {
	need := accessFor(method)
	if need == open {
		return ctx, nil
	}
	token, err := bearer(ctx)
	if err != nil {
		return nil, err
	}
	if a.requireCerts && (need == registrarOnly || need == agentOnly) && !verifiedPeer(ctx) {
		return nil, status.Error(codes.Unauthenticated, "agents must present a client certificate signed by the server's client CA")
	}
	switch need {
	case registrarOnly:
		if equal(token, a.registration) {
			return WithIdentity(ctx, Identity{Kind: Registrar}), nil
		}
		return nil, status.Error(codes.Unauthenticated, "invalid registration token")
	case apiOnly:
		id, err := a.apiClient(ctx, token)
		if err != nil {
			return nil, err
		}
		if id.Scope == 0 {
			return nil, status.Error(codes.Unauthenticated, "invalid API token")
		}
		if err := a.allow(ctx, id, method); err != nil {
			return nil, err
		}
		return WithIdentity(ctx, id), nil
	case agentOrAPI:
		id, err := a.apiClient(ctx, token)
		if err != nil {
			return nil, err
		}
		if id.Scope != 0 {
			if err := a.allow(ctx, id, method); err != nil {
				return nil, err
			}
			return WithIdentity(ctx, id), nil
		}
	}
	agentID, err := a.agentFor(ctx, token)
	if errors.Is(err, ErrNoAnswer) {
		return nil, status.Errorf(codes.Unavailable, "agent token: %v", err)
	}
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "invalid agent token: register again")
	}
	return WithIdentity(ctx, Identity{Kind: AgentCaller, AgentID: agentID}), nil
}

func (a *Authenticator) agentFor(ctx context.Context, token string) (string, error) {
	h := Hash(token)
	now := time.Now()
	a.mu.Lock()
	c, ok := a.cache[h]
	a.mu.Unlock()
	if ok && now.Before(c.until) {
		return c.agentID, nil
	}
	id, err := a.lookup(ctx, h)
	if err != nil {
		return "", err
	}
	a.mu.Lock()
	a.cache[h] = cached{agentID: id, until: now.Add(30 * time.Second)}
	a.mu.Unlock()
	return id, nil
}

func bearer(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return "", status.Error(codes.Unauthenticated, "missing authorization metadata (want \"Bearer TOKEN\")")
	}
	token, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok || token == "" {
		return "", status.Error(codes.Unauthenticated, "authorization metadata must be \"Bearer TOKEN\"")
	}
	return token, nil
}

func equal(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// UnaryInterceptor authenticates unary calls.
func (a *Authenticator) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.Authenticate(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor authenticates streaming calls. The stream of a named
// token ends when the token is revoked (Revoked) or expires.
func (a *Authenticator) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.Authenticate(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		if id := FromContext(ctx); id.TokenID != "" {
			var done func()
			ctx, done = a.streams.watch(ctx, id.TokenID)
			defer done()
		}
		return handler(srv, &wrapped{ServerStream: ss, ctx: ctx})
	}
}

type wrapped struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrapped) Context() context.Context { return w.ctx }
