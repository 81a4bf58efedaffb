package service

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/go-arcade/arcade/server/auth"
	"github.com/go-arcade/arcade/server/store"
)

// idLength is the length of a full id (a UUID).
const idLength = 36

// idFields are the request fields whose ids API clients may shorten to a
// unique prefix, as with docker and git.
var idFields = map[protoreflect.Name]struct {
	table store.IDTable
	what  string
}{
	"job_id":   {store.JobIDs, "job"},
	"run_id":   {store.RunIDs, "run"},
	"agent_id": {store.AgentIDs, "agent"},
}

// maxCandidates is how many ids an ambiguous prefix lists.
const maxCandidates = 10

// resolvePrefixes replaces, in an API client's request, an id given by a
// prefix with the one id that starts with it. A prefix no id starts with is
// NotFound; one that several start with is InvalidArgument, listing them.
func (s *Service) resolvePrefixes(ctx context.Context, req any) error {
	if auth.FromContext(ctx).Kind != auth.APIClient {
		return nil // agents send whole ids
	}
	m, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	msg := m.ProtoReflect()
	fields := msg.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		target, ok := idFields[fd.Name()]
		if !ok || fd.Kind() != protoreflect.StringKind || fd.IsList() {
			continue
		}
		given := msg.Get(fd).String()
		if given == "" || len(given) >= idLength {
			continue
		}
		prefix := strings.ToLower(given)
		if strings.Trim(prefix, "0123456789abcdef-") != "" {
			continue // not an id: the method says what is wrong with it
		}
		ids, err := s.store.IDsWithPrefix(ctx, target.table, prefix, maxCandidates+1)
		if err != nil {
			return storeError(err, string(fd.Name()))
		}
		switch {
		case len(ids) == 0:
			return grpcstatus.Errorf(codes.NotFound, "%s: no %s has an id starting with %s", fd.Name(), target.what, given)
		case len(ids) > 1:
			more := ""
			if len(ids) > maxCandidates {
				ids, more = ids[:maxCandidates], ", …"
			}
			return grpcstatus.Errorf(codes.InvalidArgument, "%s: %s is the start of several %s ids (%s%s): give more of it",
				fd.Name(), given, target.what, strings.Join(ids, ", "), more)
		}
		msg.Set(fd, protoreflect.ValueOfString(ids[0]))
	}
	return nil
}

// UnaryIDPrefixes resolves id prefixes in unary requests; it runs after
// authentication.
func (s *Service) UnaryIDPrefixes() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := s.resolvePrefixes(ctx, req); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamIDPrefixes resolves id prefixes in the requests of server streams.
func (s *Service) StreamIDPrefixes() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if info.IsClientStream {
			return handler(srv, ss)
		}
		return handler(srv, &prefixStream{ServerStream: ss, s: s})
	}
}

type prefixStream struct {
	grpc.ServerStream
	s *Service
}

func (p *prefixStream) RecvMsg(m any) error {
	if err := p.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return p.s.resolvePrefixes(p.Context(), m)
}
