// Package client dials an Arcade server: the one place where connection
// settings (bearer token, keepalive, message sizes) are decided for agents
// and command-line clients alike.
package client

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// MaxMessageSize bounds a message in either direction (log batches are the
// largest).
const MaxMessageSize = 16 << 20

// ReconnectMax is the longest wait between two attempts to reach a server
// that went away (before jitter).
const ReconnectMax = 2 * time.Second

// Dial returns a connection to the server at addr ("host:port") that sends
// token() as a bearer token on every call. The connection is lazy: no
// network happens until the first call.
//
// addr may list several server replicas, comma-separated
// ("a:9090,b:9090,c:9090"): the connection uses the first one that answers
// and moves to the next when it goes away, so an agent outlives the replica
// it was connected to. Listing the replicas in a different order on each
// agent spreads agents over them.
func Dial(addr string, token func() string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	addr, _, err := SplitScheme(addr)
	if err != nil {
		return nil, err
	}
	target, extra, err := replicaTarget(addr)
	if err != nil {
		return nil, err
	}
	opts = append(extra, opts...)
	base := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer{token}),
		// A dead server is noticed within seconds, not at the next TCP timeout.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
		// A server that comes back is reached within about ReconnectMax,
		// not after gRPC's default backoff (up to two minutes): agents must
		// be back well within their lease.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: ReconnectMax},
			MinConnectTimeout: 5 * time.Second,
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize)),
	}
	conn, err := grpc.NewClient(target, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return conn, nil
}

// SplitScheme accepts server addresses written as URLs: it strips http://,
// https://, grpc:// and grpcs:// (and a trailing /) from each address of a
// comma-separated list, and reports whether one asked for TLS (https,
// grpcs). Other schemes are refused; gRPC's own targets (dns:///…) pass.
func SplitScheme(addr string) (string, bool, error) {
	if !strings.Contains(addr, "://") {
		return addr, false, nil
	}
	if strings.HasPrefix(addr, "dns:") || strings.HasPrefix(addr, "unix:") || strings.HasPrefix(addr, "passthrough:") {
		return addr, false, nil
	}
	secure := false
	parts := strings.Split(addr, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		scheme, rest, ok := strings.Cut(p, "://")
		if ok {
			switch strings.ToLower(scheme) {
			case "http", "grpc":
			case "https", "grpcs":
				secure = true
			default:
				return "", false, fmt.Errorf("server address %q: scheme %s:// is not one of http, https, grpc, grpcs (or give host:port)", p, scheme)
			}
			p = strings.TrimSuffix(rest, "/")
		}
		if strings.Contains(p, "/") {
			return "", false, fmt.Errorf("server address %q: want host:port, without a path", parts[i])
		}
		parts[i] = p
	}
	return strings.Join(parts, ","), secure, nil
}

// replicaTarget turns a comma-separated list of addresses into a target
// served by a resolver of its own with pick_first over the addresses in
// order; a single address is returned as it is.
func replicaTarget(addr string) (string, []grpc.DialOption, error) {
	if !strings.Contains(addr, ",") {
		return addr, nil, nil
	}
	var addrs []resolver.Address
	for _, a := range strings.Split(addr, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return "", nil, fmt.Errorf("server address %q: %w", a, err)
		}
		addrs = append(addrs, resolver.Address{Addr: a})
	}
	if len(addrs) == 0 {
		return "", nil, fmt.Errorf("server address %q: no address", addr)
	}
	r := manual.NewBuilderWithScheme("arcade-replicas")
	r.InitialState(resolver.State{Addresses: addrs})
	return r.Scheme() + ":///" + addrs[0].Addr, []grpc.DialOption{
		grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"pick_first":{}}]}`),
	}, nil
}

// Static returns a token function for a fixed token.
func Static(token string) func() string { return func() string { return token } }

type bearer struct{ token func() string }

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	t := b.token()
	if t == "" {
		return nil, nil
	}
	return map[string]string{"authorization": "Bearer " + t}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }
