package server

import (
	"context"

	"google.golang.org/grpc"
)

// stopper ends what would hold a graceful stop open: streams (agent
// channels, followers of logs and events) and the agents' long polls. They
// end when the server starts stopping; other calls in flight finish (within
// the grace Run allows them).
type stopper struct {
	ctx  context.Context
	stop context.CancelFunc
}

func newStopper() *stopper {
	ctx, cancel := context.WithCancel(context.Background())
	return &stopper{ctx: ctx, stop: cancel}
}

// longPolls are the unary calls that wait for work until their deadline.
var longPolls = map[string]bool{
	"/arcade.agent.v1.AgentService/FetchJob":  true,
	"/arcade.agent.v1.AgentService/CancelJob": true,
}

// bind returns ctx ending also when the server stops.
func (s *stopper) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	unbind := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { unbind(); cancel() }
}

func (s *stopper) unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !longPolls[info.FullMethod] {
			return handler(ctx, req)
		}
		ctx, done := s.bind(ctx)
		defer done()
		return handler(ctx, req)
	}
}

func (s *stopper) stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, done := s.bind(ss.Context())
		defer done()
		return handler(srv, &stoppingStream{ServerStream: ss, ctx: ctx})
	}
}

type stoppingStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stoppingStream) Context() context.Context { return s.ctx }
