package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/go-arcade/arcade/client"
	"github.com/go-arcade/arcade/server"
)

// rpcPrefix is the text gRPC puts before a status message.
var rpcPrefix = regexp.MustCompile(`rpc error: code = [A-Za-z]+ desc = `)

// sentence turns an error into what the user reads: the context the
// command added and the server's message, without gRPC's framing (even
// nested), and for a server that cannot be reached, why.
func sentence(err error, serverAddr string) string {
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return rpcPrefix.ReplaceAllString(err.Error(), "")
	}
	st := se.GRPCStatus()
	msg := rpcPrefix.ReplaceAllString(err.Error(), "")
	switch st.Code() {
	case codes.Unavailable:
		if why := unreachable(serverAddr); why != "" {
			return why
		}
	case codes.Unauthenticated:
		msg += " (the server refused the API token: check ARCADE_API_TOKEN or --token)"
	case codes.PermissionDenied:
		msg += " (the API token's scope does not allow this)"
	}
	return msg
}

// unreachable says why the server at addr cannot be used, when a look at
// the address tells: nothing listens there, or an HTTP server does (the
// dashboard's port, say). "" when it cannot tell.
func unreachable(addr string) string {
	addr, _, err := client.SplitScheme(addr)
	if err != nil || addr == "" {
		return ""
	}
	first, _, _ := strings.Cut(addr, ",")
	if _, _, err := net.SplitHostPort(first); err != nil {
		return fmt.Sprintf("server address %q: want host:port (the server's gRPC listener, 127.0.0.1:9090 by default)", first)
	}
	conn, err := net.DialTimeout("tcp", first, 2*time.Second)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Sprintf("cannot reach the server at %s: nothing listens there (is arcade server running? --server and ARCADE_SERVER give its gRPC address)", first)
		}
		return fmt.Sprintf("cannot reach the server at %s: %v", first, err)
	}
	conn.Close()
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + first + "/healthz")
	if err != nil {
		return ""
	}
	resp.Body.Close()
	if grpcAddr := resp.Header.Get(server.GRPCAddrHeader); grpcAddr != "" {
		return fmt.Sprintf("%s is the dashboard's HTTP port of an Arcade server, not its gRPC API: use --server %s (or ARCADE_SERVER)", first, grpcAddr)
	}
	return fmt.Sprintf("%s answers HTTP, not gRPC: give the server's gRPC address (its listen setting, 127.0.0.1:9090 by default), not the dashboard's (http_listen, 127.0.0.1:8080)", first)
}
