package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"

	"github.com/go-arcade/arcade/server/gateway"
	"github.com/go-arcade/arcade/server/web"
)

// listenHTTP binds the HTTP listener (API over HTTP/JSON and the dashboard).
func (s *Server) listenHTTP() error {
	if s.cfg.HTTPListen == "" {
		return nil
	}
	lis, err := net.Listen("tcp", s.cfg.HTTPListen)
	if err != nil {
		return listenError("http_listen", "--http-listen", s.cfg.HTTPListen, err)
	}
	s.http = lis
	return nil
}

// HTTPAddr is the address of the HTTP listener, "" when it is off.
func (s *Server) HTTPAddr() string {
	if s.http == nil {
		return ""
	}
	return s.http.Addr().String()
}

// MountHTTP adds a handler to the HTTP listener (before Run), e.g. /metrics.
func (s *Server) MountHTTP(pattern string, h http.Handler) {
	if s.httpMounts == nil {
		s.httpMounts = map[string]http.Handler{}
	}
	s.httpMounts[pattern] = h
}

// startHTTP serves the HTTP listener until ctx ends. The gateway reaches the
// gRPC services in process, through the same authentication.
func (s *Server) startHTTP(ctx context.Context) error {
	if s.http == nil {
		return nil
	}
	conn, err := gateway.DialInProcess(s.grpc, s.tls)
	if err != nil {
		return err
	}
	// The login page says where the token is only when the credentials
	// file holds it (no token is ever served).
	s.MountHTTP("GET /login-hint.json", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache")
		json.NewEncoder(w).Encode(map[string]string{"credentials_file": s.credentials}) //nolint:errcheck // the client went away
	}))
	// The dashboard links /metrics; health checks may use either listener.
	for pattern, h := range s.observability() {
		if _, taken := s.httpMounts[pattern]; !taken {
			s.MountHTTP(pattern, h)
		}
	}
	h, err := gateway.NewHandler(ctx, gateway.Options{Conn: conn, Web: web.Handler(), Mount: s.httpMounts, Logger: s.log})
	if err != nil {
		conn.Close()
		return err
	}
	go func() { <-ctx.Done(); conn.Close() }()
	gateway.Serve(ctx, s.http, h, s.tls, s.log)
	scheme := "http"
	if s.tls != nil {
		scheme = "https"
	}
	s.log.Info("dashboard and HTTP API listening", "url", scheme+"://"+s.HTTPAddr()+"/")
	return nil
}

// listenError is the error of a listener that could not bind: for an
// address in use, what to do about it, naming the flag and the setting.
func listenError(setting, flag, addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s: %s is in use (another arcade server or arcade up?): give another address with %s (%s in server.yaml)", setting, addr, flag, setting)
	}
	return fmt.Errorf("%s: listen on %s: %w", setting, addr, err)
}
