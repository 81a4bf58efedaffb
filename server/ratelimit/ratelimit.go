// Package ratelimit bounds how fast each API client may call the server: a
// token bucket per client (golang.org/x/time/rate, the standard Go
// implementation), keyed by who the authenticator says is calling. Agents
// are not limited here: their traffic is bounded by design (one channel,
// batched logs).
package ratelimit

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/go-arcade/arcade/server/auth"
)

// Limiter holds a bucket per client.
type Limiter struct {
	every rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	clients map[string]*client
	calls   int
}

type client struct {
	lim  *rate.Limiter
	seen time.Time
}

// New returns a limiter allowing perSecond calls per client on average,
// with bursts of burst; perSecond <= 0 allows everything.
func New(perSecond float64, burst int) *Limiter {
	return &Limiter{every: rate.Limit(perSecond), burst: max(burst, 1), now: time.Now, clients: make(map[string]*client)}
}

// Allow reports whether the client key may make a call now.
func (l *Limiter) Allow(key string) bool {
	if l == nil || l.every <= 0 {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.clients[key]
	if !ok {
		c = &client{lim: rate.NewLimiter(l.every, l.burst)}
		l.clients[key] = c
	}
	c.seen = now
	if l.calls++; l.calls%1024 == 0 {
		for k, other := range l.clients {
			if now.Sub(other.seen) > 10*time.Minute {
				delete(l.clients, k)
			}
		}
	}
	return c.lim.AllowN(now, 1)
}

// key names the caller of ctx; agents get none (not limited).
func key(ctx context.Context) (string, bool) {
	id := auth.FromContext(ctx)
	switch id.Kind {
	case auth.AgentCaller, auth.Registrar:
		return "", false
	case auth.APIClient:
		return "api:" + id.Client, true
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return "addr:" + host(p.Addr.String()), true
	}
	return "anonymous", true
}

func host(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i]
		}
	}
	return addr
}

func (l *Limiter) check(ctx context.Context) error {
	k, limited := key(ctx)
	if limited && !l.Allow(k) {
		return status.Errorf(codes.ResourceExhausted, "rate limit: at most %g calls/s per client (bursts of %d); retry later", float64(l.every), l.burst)
	}
	return nil
}

// UnaryInterceptor limits unary calls; put it after authentication.
func (l *Limiter) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := l.check(ctx); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor limits the opening of streams.
func (l *Limiter) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := l.check(ss.Context()); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}
