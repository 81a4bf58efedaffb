package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

type fakeTokens struct {
	mu      sync.Mutex
	byHash  map[string]*NamedToken
	touched map[string]int
	lookups int
}

func (f *fakeTokens) TokenByHash(_ context.Context, hash string) (*NamedToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	t := f.byHash[hash]
	if t == nil {
		return nil, ErrNoToken
	}
	c := *t
	return &c, nil
}

func (f *fakeTokens) TouchToken(_ context.Context, id string, _ time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.touched[id]++
	return nil
}

func (f *fakeTokens) set(token string, t *NamedToken) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byHash[Hash(token)] = t
}

// TestNamedTokens: a named token acts within its scope under its name; a
// token revoked or expired is refused at the next call (each call reads
// it); tokens that do not look named are not looked up; a refused write
// reaches OnDenied with the caller's name.
func TestNamedTokens(t *testing.T) {
	store := &fakeTokens{byHash: map[string]*NamedToken{}, touched: map[string]int{}}
	a := New("reg", "root", func(context.Context, string) (string, error) { return "", errors.New("no agent") })
	a.UseNamedTokens(store)
	var denied []string
	a.OnDenied(func(_ context.Context, id Identity, method string, _ error) {
		denied = append(denied, id.Name+" "+method)
	})

	reader, writer := NewNamedToken(), NewNamedToken()
	store.set(reader, &NamedToken{ID: "r1", Name: "ci-reader", Scope: Read})
	store.set(writer, &NamedToken{ID: "w1", Name: "deployer", Scope: Write, ExpiresAt: time.Now().Add(time.Hour)})

	ctx := func(token string) context.Context {
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+token))
	}
	got, err := a.Authenticate(ctx(reader), "/arcade.job.v1.JobService/ListJobs")
	if err != nil {
		t.Fatal(err)
	}
	if id := FromContext(got); id.Name != "ci-reader" || id.Scope != Read || id.TokenID != "r1" {
		t.Errorf("identity %+v", id)
	}
	if err := call(a, reader, "/arcade.job.v1.JobService/CancelJob"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("reader cancelling: %v", err)
	}
	if len(denied) != 1 || denied[0] != "ci-reader /arcade.job.v1.JobService/CancelJob" {
		t.Errorf("OnDenied saw %v", denied)
	}
	if err := call(a, writer, "/arcade.job.v1.JobService/CancelJob"); err != nil {
		t.Errorf("writer cancelling: %v", err)
	}
	if err := call(a, writer, "/arcade.secret.v1.SecretService/CreateSecret"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("writer creating a secret: %v", err)
	}

	store.set(reader, &NamedToken{ID: "r1", Name: "ci-reader", Scope: Read, RevokedAt: time.Now()})
	if err := call(a, reader, "/arcade.job.v1.JobService/ListJobs"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("revoked token: %v, want Unauthenticated at once", err)
	}
	store.set(writer, &NamedToken{ID: "w1", Name: "deployer", Scope: Write, ExpiresAt: time.Now().Add(-time.Second)})
	if err := call(a, writer, "/arcade.job.v1.JobService/ListJobs"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("expired token: %v, want Unauthenticated", err)
	}

	before := store.lookups
	if err := call(a, "not-a-named-token", "/arcade.job.v1.JobService/ListJobs"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("unknown token: %v", err)
	}
	if err := call(a, "root", "/arcade.job.v1.JobService/ListJobs"); err != nil {
		t.Errorf("server.yaml admin token: %v", err)
	}
	if store.lookups != before {
		t.Errorf("%d database lookups for tokens that are not named ones", store.lookups-before)
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (f *fakeStream) Context() context.Context { return f.ctx }

// TestRevokedCutsStreams: a stream opened with a named token ends when the
// token is revoked; another token's stream goes on.
func TestRevokedCutsStreams(t *testing.T) {
	store := &fakeTokens{byHash: map[string]*NamedToken{}, touched: map[string]int{}}
	a := New("reg", "root", func(context.Context, string) (string, error) { return "", errors.New("no agent") })
	a.UseNamedTokens(store)
	one, two := NewNamedToken(), NewNamedToken()
	store.set(one, &NamedToken{ID: "1", Name: "one", Scope: Read})
	store.set(two, &NamedToken{ID: "2", Name: "two", Scope: Read})
	open := func(token string) chan error {
		done := make(chan error, 1)
		ss := &fakeStream{ctx: metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+token))}
		go func() {
			done <- a.StreamInterceptor()(nil, ss, &grpc.StreamServerInfo{FullMethod: "/arcade.job.v1.StreamService/StreamEvents"},
				func(_ any, s grpc.ServerStream) error {
					<-s.Context().Done()
					return context.Cause(s.Context())
				})
		}()
		return done
	}
	s1, s2 := open(one), open(two)
	time.Sleep(50 * time.Millisecond)
	a.Revoked("1")
	select {
	case err := <-s1:
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("cut stream ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the revoked token's stream goes on")
	}
	select {
	case err := <-s2:
		t.Fatalf("another token's stream ended: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	a.Revoked("2")
	<-s2
}
