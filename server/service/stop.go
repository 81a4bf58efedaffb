package service

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
)

// errStopping ends the calls that wait (streams, long polls) when the
// server stops: the client connects again, to this server once it is back
// or to another replica.
var errStopping = grpcstatus.Error(codes.Unavailable, "the server is stopping; connect again")

// waits reports whether a method holds its call open until something
// happens: every stream of StreamService (agent channels, log and event
// followers), the agents' long polls, and calls into plugins and their
// loads (a plugin may take up to its timeout). A stopping server ends them
// instead of waiting for them; other calls finish. Plugins themselves stay
// open until the notifications queued before the stop are delivered.
func waits(method string) bool {
	return strings.HasPrefix(method, "/arcade.job.v1.StreamService/") ||
		method == "/arcade.agent.v1.AgentService/FetchJob" ||
		method == "/arcade.agent.v1.AgentService/CancelJob" ||
		method == "/arcade.plugin.v1.PluginService/CallPlugin" ||
		method == "/arcade.plugin.v1.PluginService/ReloadPlugin"
}

// Stop ends the calls that wait and refuses new ones, so that a graceful
// stop of the gRPC server does not wait for agents' channels and
// followers. Call it when the server stops.
func (s *Service) Stop() { s.stop() }

// stopped wraps ctx so that it ends when the server stops.
func (s *Service) stopped(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	unregister := context.AfterFunc(s.stopCtx, cancel)
	return ctx, func() { unregister(); cancel() }
}

// UnaryStop ends the long polls of agents when the server stops.
func (s *Service) UnaryStop() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !waits(info.FullMethod) {
			return handler(ctx, req)
		}
		if s.stopCtx.Err() != nil {
			return nil, errStopping
		}
		ctx, done := s.stopped(ctx)
		defer done()
		resp, err := handler(ctx, req)
		if s.stopCtx.Err() != nil && err != nil {
			return nil, errStopping
		}
		return resp, err
	}
}

// StreamStop ends the streams that wait when the server stops.
func (s *Service) StreamStop() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !waits(info.FullMethod) {
			return handler(srv, ss)
		}
		if s.stopCtx.Err() != nil {
			return errStopping
		}
		ctx, done := s.stopped(ss.Context())
		defer done()
		err := handler(srv, &stopStream{ServerStream: ss, ctx: ctx})
		if s.stopCtx.Err() != nil {
			return errStopping
		}
		return err
	}
}

type stopStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stopStream) Context() context.Context { return s.ctx }
