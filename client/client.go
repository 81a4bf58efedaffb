// Package client dials an Arcade server: the one place where connection
// settings (bearer token, keepalive, message sizes) are decided for agents
// and command-line clients alike.
package client

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
)

// MaxMessageSize bounds a message in either direction (log batches are the
// largest).
const MaxMessageSize = 16 << 20

// Dial returns a connection to the server at addr ("host:port") that sends
// token() as a bearer token on every call. The connection is lazy: no
// network happens until the first call.
func Dial(addr string, token func() string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	base := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer{token}),
		// A dead server is noticed within seconds, not at the next TCP timeout.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize)),
	}
	conn, err := grpc.NewClient(addr, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return conn, nil
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
