package bounds

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// check refuses a decoded request: invalid UTF-8 noted by the codec, or a
// field over its bound.
func (r *Rules) check(codec *Codec, req any) error {
	if err := codec.take(req); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	m, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	if err := r.Check(m); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return nil
}

// UnaryInterceptor refuses requests over their bounds. codec is the
// server's codec (nil when it is not Codec).
func (r *Rules) UnaryInterceptor(codec *Codec) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := r.check(codec, req); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor refuses every message of a client stream that is over
// its bounds: the handler's RecvMsg returns the error.
func (r *Rules) StreamInterceptor(codec *Codec) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &checkedStream{ServerStream: ss, r: r, codec: codec})
	}
}

type checkedStream struct {
	grpc.ServerStream
	r     *Rules
	codec *Codec
}

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		s.codec.take(m) //nolint:errcheck // forget a note of a message that failed anyway
		return err
	}
	return s.r.check(s.codec, m)
}
