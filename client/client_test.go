package client

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
)

// replica is a gRPC server on 127.0.0.1 that answers health checks.
func replica(t *testing.T) (string, *grpc.Server) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go gs.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(gs.Stop)
	return lis.Addr().String(), gs
}

func TestDialFailsOverBetweenReplicas(t *testing.T) {
	a, stopA := replica(t)
	b, _ := replica(t)
	conn, err := Dial(a+", "+b, Static(""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h := healthpb.NewHealthClient(conn)
	check := func() (string, error) {
		var p peer.Peer
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := h.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p), grpc.WaitForReady(true)); err != nil {
			return "", err
		}
		return p.Addr.String(), nil
	}
	if got, err := check(); err != nil || got != a {
		t.Fatalf("first call went to %s (%v), want the first replica %s", got, err, a)
	}
	stopA.Stop()
	// The call that notices the loss may fail; the next ones reach b.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, err := check(); err == nil && got == b {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never moved to the second replica")
		}
	}
}

func TestDialRefusesBadReplicaList(t *testing.T) {
	for _, addr := range []string{"a:1,nonsense", ",,"} {
		if _, err := Dial(addr, Static("")); err == nil || !strings.Contains(err.Error(), "server address") {
			t.Errorf("Dial(%q) = %v, want an error naming the server address", addr, err)
		}
	}
}

func TestSplitScheme(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		secure   bool
		bad      bool
	}{
		{"127.0.0.1:9090", "127.0.0.1:9090", false, false},
		{"http://127.0.0.1:9090", "127.0.0.1:9090", false, false},
		{"http://127.0.0.1:9090/", "127.0.0.1:9090", false, false},
		{"https://arcade.example.com:9090", "arcade.example.com:9090", true, false},
		{"grpc://a:1,grpcs://b:2", "a:1,b:2", true, false},
		{"dns:///arcade:9090", "dns:///arcade:9090", false, false},
		{"ftp://a:1", "", false, true},
		{"http://a:1/v1/jobs", "", false, true},
	} {
		got, secure, err := SplitScheme(tc.in)
		if (err != nil) != tc.bad || got != tc.want || secure != tc.secure {
			t.Errorf("SplitScheme(%q) = %q, %v, %v", tc.in, got, secure, err)
		}
	}
}
