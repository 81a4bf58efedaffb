package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

const (
	// storeCheckInterval is how often the gRPC health status is refreshed
	// from a write to the database.
	storeCheckInterval = 2 * time.Second
	// storeCheckTimeout bounds that write, and each read of the metrics.
	storeCheckTimeout = 2 * time.Second
)

// checkStore checks within storeCheckTimeout that the database takes
// writes: one that answers reads but refuses writes (a full disk) cannot
// serve.
func (s *Server) checkStore(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, storeCheckTimeout)
	defer cancel()
	return s.store.CheckWrite(ctx, s.replica)
}

// watchStore keeps the gRPC health status (service "") in step with the
// database: SERVING while it takes writes, NOT_SERVING while it does not.
func (s *Server) watchStore(ctx context.Context) {
	t := time.NewTicker(storeCheckInterval)
	defer t.Stop()
	up := true // health.NewServer starts SERVING
	for {
		err := s.checkStore(ctx)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && up:
			s.log.Warn("database cannot write: health NOT_SERVING", "err", err)
			s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
		case err == nil && !up:
			s.log.Info("database writes again: health SERVING")
			s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		}
		up = err == nil
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// ready says why the server cannot take work, nil when it can: it serves
// gRPC (plugins are loaded by then) and its database takes writes.
func (s *Server) ready(ctx context.Context) error {
	if !s.serving.Load() {
		return errors.New("not serving (starting or stopping)")
	}
	if err := s.checkStore(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// observability are the handlers of /metrics, /healthz and /readyz, served
// on the dashboard's listener and on MetricsListen.
// GRPCAddrHeader is the header of /healthz answers that gives the server's
// gRPC address.
const GRPCAddrHeader = "X-Arcade-Grpc-Addr"

func (s *Server) observability() map[string]http.Handler {
	return map[string]http.Handler{
		"GET /metrics": promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{
			ErrorHandling: promhttp.ContinueOnError, Registry: s.metrics}),
		"GET /healthz": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			// A client pointed at this HTTP port by mistake learns the gRPC one.
			w.Header().Set(GRPCAddrHeader, s.Addr())
			fmt.Fprintln(w, "ok")
		}),
		"GET /readyz": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := s.ready(r.Context()); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		}),
	}
}

// serveMetrics serves /metrics, /healthz, /readyz (and, with MetricsPprof,
// /debug/pprof/) on MetricsListen until ctx ends.
func (s *Server) serveMetrics(ctx context.Context) error {
	mux := http.NewServeMux()
	for pattern, h := range s.observability() {
		mux.Handle(pattern, h)
	}
	if s.cfg.MetricsPprof {
		handlePprof(mux)
	}
	lis, err := net.Listen("tcp", s.cfg.MetricsListen)
	if err != nil {
		return fmt.Errorf("metrics: listen on %s: %w", s.cfg.MetricsListen, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("metrics server", "err", err)
		}
	}()
	s.log.Info("metrics and health listening", "addr", lis.Addr().String(), "pprof", s.cfg.MetricsPprof)
	return nil
}
