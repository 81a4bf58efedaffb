// Package audit keeps the audit log: every write made through the API —
// and every pipeline webhook — with who (the token's name), what (the
// method and what it was about), when, from where (the caller's address)
// and how it ended. One interceptor on the gRPC server sees every call, so
// a method added later is recorded without anyone remembering to. Entries
// are written in the background, many per statement, so recording costs a
// call nothing; the log is pruned to a count and an age.
package audit

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/go-arcade/arcade/server/auth"
	"github.com/go-arcade/arcade/server/store"
)

// Store is what the log needs of the database.
type Store interface {
	AddAuditEvents(ctx context.Context, events []*store.AuditEvent) error
	PruneAuditEvents(ctx context.Context, before time.Time, keep int) (int, error)
}

// Config bounds the log.
type Config struct {
	// MaxEvents keeps the newest entries only (default 100,000; negative:
	// no count bound).
	MaxEvents int
	// MaxAge drops older entries (default 90 days; negative: no age bound).
	MaxAge time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxEvents == 0 {
		c.MaxEvents = 100_000
	}
	if c.MaxAge == 0 {
		c.MaxAge = 90 * 24 * time.Hour
	}
	return c
}

// Validate checks the bounds: a count bound keeps at least 100 entries,
// an age bound at least an hour (so that the log can answer "what just
// happened").
func (c Config) Validate() error {
	if c.MaxEvents > 0 && c.MaxEvents < 100 {
		return fmt.Errorf("audit_max_events: at least 100 (or negative: no bound), got %d", c.MaxEvents)
	}
	if c.MaxAge > 0 && c.MaxAge < time.Hour {
		return fmt.Errorf("audit_max_age: at least 1h (or negative: no bound), got %s", c.MaxAge)
	}
	return nil
}

// Bounds are the field and batch limits.
const (
	queueSize    = 4096
	maxBatch     = 256
	maxField     = 512
	recordWait   = 5 * time.Second
	writeTimeout = 30 * time.Second
)

// Log records entries and keeps them bounded.
type Log struct {
	store Store
	cfg   Config
	log   *slog.Logger
	in    chan item
	now   func() time.Time
}

// item is an entry to write, or (done set) a flush request.
type item struct {
	e    *store.AuditEvent
	done chan struct{}
}

// New returns a log over st; Run writes what it records.
func New(st Store, cfg Config, logger *slog.Logger) *Log {
	return &Log{store: st, cfg: cfg.withDefaults(), log: logger, in: make(chan item, queueSize),
		now: func() time.Time { return time.Now().UTC() }}
}

// Record queues an entry. It waits for room only when the writer is far
// behind (the database is slow), and at most a few seconds: then the entry
// is dropped, and said so in the server log.
func (l *Log) Record(e *store.AuditEvent) {
	if e.ID == "" {
		e.ID = uuid.Must(uuid.NewV7()).String()
	}
	if e.At.IsZero() {
		e.At = l.now()
	}
	e.Actor, e.Method, e.Resource = clip(e.Actor), clip(e.Method), clip(e.Resource)
	e.Peer, e.Outcome, e.Message = clip(e.Peer), clip(e.Outcome), clip(e.Message)
	select {
	case l.in <- item{e: e}:
		return
	default:
	}
	t := time.NewTimer(recordWait)
	defer t.Stop()
	select {
	case l.in <- item{e: e}:
	case <-t.C:
		l.log.Error("audit log entry dropped: the database does not keep up", "actor", e.Actor, "method", e.Method, "resource", e.Resource)
	}
}

// Flush waits until what was recorded before it is written.
func (l *Log) Flush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case l.in <- item{done: done}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run writes recorded entries until ctx ends, then what is left.
func (l *Log) Run(ctx context.Context) {
	batch := make([]*store.AuditEvent, 0, maxBatch)
	var waiting []chan struct{}
	write := func() {
		if len(batch) > 0 {
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
			err := l.store.AddAuditEvents(wctx, batch)
			cancel()
			if err != nil {
				l.log.Error("audit log entries not written", "entries", len(batch), "err", err)
			}
			batch = batch[:0]
		}
		for _, d := range waiting {
			close(d)
		}
		waiting = waiting[:0]
	}
	take := func(it item) {
		if it.done != nil {
			waiting = append(waiting, it.done)
		} else {
			batch = append(batch, it.e)
		}
	}
	for {
		select {
		case it := <-l.in:
			take(it)
		gather:
			for len(batch) < maxBatch {
				select {
				case it := <-l.in:
					take(it)
				default:
					break gather
				}
			}
			write()
		case <-ctx.Done():
			for {
				select {
				case it := <-l.in:
					take(it)
					if len(batch) >= maxBatch {
						write()
					}
				default:
					write()
					return
				}
			}
		}
	}
}

// Prune drops entries past the bounds.
func (l *Log) Prune(ctx context.Context) error {
	var before time.Time
	if l.cfg.MaxAge > 0 {
		before = l.now().Add(-l.cfg.MaxAge)
	}
	keep := max(l.cfg.MaxEvents, 0)
	n, err := l.store.PruneAuditEvents(ctx, before, keep)
	if n > 0 {
		l.log.Info("audit log pruned", "removed", n, "max_events", l.cfg.MaxEvents, "max_age", l.cfg.MaxAge)
	}
	return err
}

// UnaryInterceptor records the writes of API clients, after the call, with
// its outcome. Install it after authentication.
func (l *Log) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		id := auth.FromContext(ctx)
		if id.Kind != auth.APIClient || !auth.NeedsWrite(info.FullMethod) {
			return handler(ctx, req)
		}
		resp, err := handler(ctx, req)
		l.Record(entry(ctx, id, info.FullMethod, req, resp, err))
		return resp, err
	}
}

// StreamInterceptor records the streaming writes of API clients (when it
// ends). Install it after authentication.
func (l *Log) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		id := auth.FromContext(ss.Context())
		if id.Kind != auth.APIClient || !auth.NeedsWrite(info.FullMethod) {
			return handler(srv, ss)
		}
		err := handler(srv, ss)
		l.Record(entry(ss.Context(), id, info.FullMethod, nil, nil, err))
		return err
	}
}

// Denied records a write an API client's scope did not allow (for
// auth.Authenticator.OnDenied).
func (l *Log) Denied(ctx context.Context, id auth.Identity, method string, err error) {
	if auth.NeedsWrite(method) {
		l.Record(entry(ctx, id, method, nil, nil, err))
	}
}

func entry(ctx context.Context, id auth.Identity, method string, req, resp any, err error) *store.AuditEvent {
	e := &store.AuditEvent{Actor: id.Name, Method: strings.TrimPrefix(method, "/"), Peer: PeerOf(ctx), Outcome: "OK"}
	if e.Actor == "" {
		e.Actor = "client " + id.Client
	}
	if err != nil {
		st := status.Convert(err)
		e.Outcome, e.Message = codeName(st.Code().String()), st.Message()
	}
	e.Resource = describe(req, resp)
	return e
}

// codeName spells a gRPC code as the protos do: PERMISSION_DENIED.
func codeName(camel string) string {
	var b strings.Builder
	for i, r := range camel {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// describe says what a call was about from its request's identifying
// fields (ids, names, targets, scopes), and the ids its answer holds (what
// a create made). Nothing else of a request is kept: values, commands, env
// and secrets never reach the log.
func describe(req, resp any) string {
	var parts []string
	if m, ok := req.(proto.Message); ok {
		parts = identifying(m.ProtoReflect(), "", parts, false)
	}
	if m, ok := resp.(proto.Message); ok {
		for _, p := range identifying(m.ProtoReflect(), "", nil, true) {
			if !slices.Contains(parts, p) {
				parts = append(parts, p)
			}
		}
	}
	return strings.Join(parts, " ")
}

// identifying collects the identifying fields of a message and of the
// messages it holds (one level deep: pipeline.id, job.id); only ids with
// idsOnly.
func identifying(m protoreflect.Message, prefix string, parts []string, idsOnly bool) []string {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		if f.IsList() || f.IsMap() || !m.Has(f) {
			continue
		}
		name := string(f.Name())
		switch {
		case f.Kind() == protoreflect.MessageKind:
			if prefix == "" {
				parts = identifying(m.Get(f).Message(), name+".", parts, idsOnly)
			}
		case idsOnly:
			if f.Kind() == protoreflect.StringKind && name == "id" {
				parts = append(parts, prefix+name+"="+m.Get(f).String())
			}
		case f.Kind() == protoreflect.StringKind && identifyingField(name):
			parts = append(parts, prefix+name+"="+m.Get(f).String())
		case f.Kind() == protoreflect.EnumKind && name == "scope":
			if v := f.Enum().Values().ByNumber(m.Get(f).Enum()); v != nil {
				parts = append(parts, prefix+name+"="+strings.ToLower(shortEnum(string(v.Name()), string(f.Enum().Name()))))
			}
		case f.Kind() == protoreflect.BoolKind && (name == "trusted" || name == "allowed"):
			parts = append(parts, fmt.Sprintf("%s%s=%v", prefix, name, m.Get(f).Bool()))
		}
	}
	return parts
}

func identifyingField(name string) bool {
	return name == "id" || name == "name" || name == "target" || name == "function" || strings.HasSuffix(name, "_id")
}

// shortEnum drops an enum value's type prefix: SECRET_SCOPE_GLOBAL → GLOBAL.
func shortEnum(value, enum string) string {
	var b strings.Builder
	for i, r := range enum {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return strings.TrimPrefix(value, b.String()+"_")
}

type peerKey struct{}

// WithPeer returns ctx carrying the address of the caller of a request that
// did not come over gRPC (a webhook).
func WithPeer(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, peerKey{}, addr)
}

// PeerOf returns the caller's address. Calls through the HTTP gateway come
// over an in-process connection; their address is the last one of the
// x-forwarded-for the gateway set (earlier ones were sent by the client and
// prove nothing).
func PeerOf(ctx context.Context) string {
	if a, ok := ctx.Value(peerKey{}).(string); ok {
		return a
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	addr := p.Addr.String()
	if p.Addr.Network() == "bufconn" {
		md, _ := metadata.FromIncomingContext(ctx)
		if fwd := md.Get("x-forwarded-for"); len(fwd) > 0 {
			hops := strings.Split(fwd[len(fwd)-1], ",")
			return strings.TrimSpace(hops[len(hops)-1]) + " (http)"
		}
		return "in-process"
	}
	return addr
}

func clip(s string) string {
	if len(s) <= maxField {
		return s
	}
	cut := maxField
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
