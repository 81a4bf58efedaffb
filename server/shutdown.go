package server

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// stopper ends what would hold a graceful stop open: streams (agent
// channels, followers of logs and events), the agents' long polls and the
// plugin calls of API clients. They end when the server starts stopping,
// with Unavailable (connect again, to this server once it is back or to
// another replica), and new ones are refused; other calls in flight finish
// (within the grace Run allows them).
type stopper struct {
	ctx  context.Context
	stop context.CancelFunc
}

func newStopper() *stopper {
	ctx, cancel := context.WithCancel(context.Background())
	return &stopper{ctx: ctx, stop: cancel}
}

// errStopping is what the calls the stop ends get.
var errStopping = status.Error(codes.Unavailable, "the server is stopping; connect again")

// waits are the unary calls that may wait long: the agents' long polls,
// which wait for work until their deadline, and plugin calls, which wait
// for the plugin.
var waits = map[string]bool{
	"/arcade.agent.v1.AgentService/FetchJob":     true,
	"/arcade.agent.v1.AgentService/CancelJob":    true,
	"/arcade.plugin.v1.PluginService/CallPlugin": true,
}

// bind returns ctx ending also when the server stops.
func (s *stopper) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	unbind := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { unbind(); cancel() }
}

func (s *stopper) unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !waits[info.FullMethod] {
			return handler(ctx, req)
		}
		if s.ctx.Err() != nil {
			return nil, errStopping
		}
		ctx, done := s.bind(ctx)
		defer done()
		resp, err := handler(ctx, req)
		if err != nil && s.ctx.Err() != nil {
			return nil, errStopping
		}
		return resp, err
	}
}

func (s *stopper) stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if s.ctx.Err() != nil {
			return errStopping
		}
		ctx, done := s.bind(ss.Context())
		defer done()
		err := handler(srv, &stoppingStream{ServerStream: ss, ctx: ctx})
		if s.ctx.Err() != nil {
			return errStopping
		}
		return err
	}
}

type stoppingStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stoppingStream) Context() context.Context { return s.ctx }
