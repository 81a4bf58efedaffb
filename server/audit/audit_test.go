package audit

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	secretv1 "github.com/go-arcade/arcade/api/secret/v1"
	"github.com/go-arcade/arcade/server/auth"
	"github.com/go-arcade/arcade/server/store"
)

type fakeStore struct {
	mu     sync.Mutex
	events []*store.AuditEvent
	writes int
}

func (f *fakeStore) AddAuditEvents(_ context.Context, es []*store.AuditEvent) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, es...)
	f.writes++
	return nil
}

func (f *fakeStore) PruneAuditEvents(context.Context, time.Time, int) (int, error) { return 0, nil }

func (f *fakeStore) all() []*store.AuditEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*store.AuditEvent(nil), f.events...)
}

type bufAddr struct{}

func (bufAddr) Network() string { return "bufconn" }
func (bufAddr) String() string  { return "bufconn" }

// TestInterceptorRecordsWrites: writes are recorded with the token's name,
// the method, what they were about (never a value), the caller's address
// and the outcome; reads are not.
func TestInterceptorRecordsWrites(t *testing.T) {
	st := &fakeStore{}
	l := New(st, Config{}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()

	caller := func(addr net.Addr, md metadata.MD) context.Context {
		c := auth.WithIdentity(context.Background(), auth.Identity{Kind: auth.APIClient, Scope: auth.Admin, Name: "ops"})
		c = peer.NewContext(c, &peer.Peer{Addr: addr})
		return metadata.NewIncomingContext(c, md)
	}
	direct := caller(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555}, nil)
	gateway := caller(bufAddr{}, metadata.Pairs("x-forwarded-for", "10.9.9.9, 192.0.2.7"))
	call := func(ctx context.Context, method string, req, resp any, err error) {
		_, _ = l.UnaryInterceptor()(ctx, req, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) { return resp, err })
	}
	call(direct, "/arcade.secret.v1.SecretService/CreateSecret",
		&secretv1.CreateSecretRequest{Name: "DEPLOY_KEY", Scope: secretv1.SecretScope_SECRET_SCOPE_PIPELINE, Target: "ship", Value: "hunter2-VALUE"}, nil, nil)
	call(gateway, "/arcade.job.v1.JobService/CreateJob",
		&jobv1.CreateJobRequest{Name: "build", Commands: []string{"echo cmd-text"}, Secrets: map[string]string{"K": "inline-VALUE"}},
		&jobv1.CreateJobResponse{Job: &jobv1.JobDetail{Id: "job-1", Name: "build"}}, nil)
	call(direct, "/arcade.job.v1.JobService/CancelJob", &jobv1.CancelJobRequest{JobId: "job-2"}, nil, status.Error(codes.FailedPrecondition, "job job-2 already ended"))
	call(direct, "/arcade.job.v1.JobService/ListJobs", &jobv1.ListJobsRequest{}, nil, nil)
	call(direct, "/arcade.secret.v1.TokenService/ListTokens", &secretv1.ListTokensRequest{}, nil, nil) // a read an admin token needs
	l.Denied(direct, auth.Identity{Kind: auth.APIClient, Scope: auth.Read, Name: "viewer"}, "/arcade.job.v1.JobService/RetryJob",
		status.Error(codes.PermissionDenied, "a read token may not call RetryJob (needs write)"))
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := st.all()
	if len(got) != 4 {
		t.Fatalf("%d entries, want 4 (reads are not recorded): %v", len(got), got)
	}
	want := []struct{ actor, method, resource, peer, outcome string }{
		{"ops", "arcade.secret.v1.SecretService/CreateSecret", "name=DEPLOY_KEY scope=pipeline target=ship", "127.0.0.1:5555", "OK"},
		{"ops", "arcade.job.v1.JobService/CreateJob", "name=build job.id=job-1", "192.0.2.7 (http)", "OK"},
		{"ops", "arcade.job.v1.JobService/CancelJob", "job_id=job-2", "127.0.0.1:5555", "FAILED_PRECONDITION"},
		{"viewer", "arcade.job.v1.JobService/RetryJob", "", "127.0.0.1:5555", "PERMISSION_DENIED"},
	}
	for i, w := range want {
		e := got[i]
		if e.Actor != w.actor || e.Method != w.method || e.Resource != w.resource || e.Peer != w.peer || e.Outcome != w.outcome {
			t.Errorf("entry %d = %+v, want %+v", i, *e, w)
		}
		if e.ID == "" || e.At.IsZero() {
			t.Errorf("entry %d has no id or time", i)
		}
		for _, v := range []string{"hunter2-VALUE", "inline-VALUE", "cmd-text"} {
			if strings.Contains(e.Resource+e.Message, v) {
				t.Errorf("entry %d holds %q", i, v)
			}
		}
	}
	// Entries recorded when the server stops are written before Run returns.
	l.Record(&store.AuditEvent{Actor: "late", Method: "m"})
	cancel()
	<-done
	if all := st.all(); all[len(all)-1].Actor != "late" {
		t.Error("an entry recorded at shutdown was not written")
	}
}

// BenchmarkInterceptor measures what recording costs a write call (the
// entry is built, described and queued; the writer runs beside), against
// the same call not recorded (a read).
func BenchmarkInterceptor(b *testing.B) {
	st := &fakeStore{}
	l := New(st, Config{}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx)
	caller := auth.WithIdentity(context.Background(), auth.Identity{Kind: auth.APIClient, Scope: auth.Admin, Name: "ops"})
	caller = peer.NewContext(caller, &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555}})
	req := &jobv1.CreateJobRequest{Name: "build", Commands: []string{"make"}, Env: map[string]string{"A": "1"}}
	resp := &jobv1.CreateJobResponse{Job: &jobv1.JobDetail{Id: "0192", Name: "build"}}
	handler := func(context.Context, any) (any, error) { return resp, nil }
	icpt := l.UnaryInterceptor()
	for _, m := range []string{"/arcade.job.v1.JobService/ListJobs", "/arcade.job.v1.JobService/CreateJob"} {
		b.Run(m[strings.LastIndex(m, "/")+1:], func(b *testing.B) {
			info := &grpc.UnaryServerInfo{FullMethod: m}
			for b.Loop() {
				_, _ = icpt(caller, req, info, handler)
			}
		})
	}
}
