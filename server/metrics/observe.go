package metrics

import (
	"context"
	"database/sql"
	"errors"
	"path"
	"strings"

	"github.com/uptrace/bun"
	"google.golang.org/grpc"

	"github.com/go-arcade/arcade/host"
)

// StreamInterceptor counts the open server streams of the kinds in
// arcade_stream_subscribers (log, status and event streams, agent
// channels); other streams pass untouched.
func (m *Metrics) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		kind, ok := streamKinds[path.Base(info.FullMethod)]
		if m == nil || !ok {
			return handler(srv, ss)
		}
		g := m.subscribers.WithLabelValues(kind)
		g.Inc()
		defer g.Dec()
		return handler(srv, ss)
	}
}

// PluginCall counts a finished plugin call; pass it to host.WithCallObserver.
func (m *Metrics) PluginCall(c host.CallRecord) {
	if m == nil {
		return
	}
	m.pluginDuration.WithLabelValues(c.Plugin).Observe(c.Duration.Seconds())
	if c.Err == nil {
		m.pluginCalls.WithLabelValues(c.Plugin, "ok").Inc()
		return
	}
	m.pluginCalls.WithLabelValues(c.Plugin, "error").Inc()
	m.pluginErrors.WithLabelValues(c.Plugin, c.Reason()).Inc()
}

// WatchPlugins counts the plugin manager's load, reload, unload and failure
// events; subscribe before plugins load to count the first loads.
func (m *Metrics) WatchPlugins(pm *host.Manager) {
	if m == nil {
		return
	}
	pm.Subscribe(func(e host.Event) {
		m.pluginEvents.WithLabelValues(e.Plugin, string(e.Type)).Inc()
		if e.Type == host.EventReloaded {
			m.pluginReloads.WithLabelValues(e.Plugin).Inc()
		}
	})
}

// QueryHook returns a bun query hook that times every query by operation.
func (m *Metrics) QueryHook() bun.QueryHook { return queryHook{m} }

type queryHook struct{ m *Metrics }

func (queryHook) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (h queryHook) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	if h.m == nil {
		return
	}
	op := operation(e.Operation())
	h.m.storeQueries.WithLabelValues(op).Observe(sinceSeconds(h.m, e))
	if e.Err != nil && !errors.Is(e.Err, sql.ErrNoRows) {
		h.m.storeErrors.WithLabelValues(op).Inc()
	}
}

func sinceSeconds(m *Metrics, e *bun.QueryEvent) float64 {
	return max(m.now().Sub(e.StartTime).Seconds(), 0)
}

// operation reduces a query's first word to a short known set, so that raw
// SQL cannot grow the label's values without bound.
func operation(op string) string {
	switch op = strings.ToUpper(op); op {
	case "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "WITH", "BEGIN", "COMMIT", "ROLLBACK":
		return op
	case "TRUNCATE", "MERGE":
		return "DELETE"
	}
	return "OTHER"
}
