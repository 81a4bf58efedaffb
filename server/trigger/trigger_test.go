package trigger

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type fakeCron struct {
	mu      sync.Mutex
	entries []CronEntry
	fired   []time.Time
}

func (f *fakeCron) CronEntries(context.Context) ([]CronEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.entries, nil
}

func (f *fakeCron) FireCron(_ context.Context, _ CronEntry, at time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fired = append(f.fired, at)
	return nil
}

func TestSchedulerWithInjectedClock(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 2, 30, 0, time.UTC)
	clock := func() time.Time { return now }
	target := &fakeCron{entries: []CronEntry{{PipelineID: "p", Pipeline: "p", Expr: "*/5 * * * *"}}}
	s := NewScheduler(target, clock, time.UTC, slog.New(slog.DiscardHandler))
	steps := []struct {
		to   time.Time
		fire int
	}{
		{now, 0}, // first sight: remembered, not fired
		{time.Date(2026, 11, 29, 10, 4, 59, 0, time.UTC), 0},
		{time.Date(2026, 11, 29, 10, 5, 0, 0, time.UTC), 1},  // 10:05 is due
		{time.Date(2026, 11, 29, 10, 5, 30, 0, time.UTC), 0}, // not twice
		{time.Date(2026, 11, 29, 10, 31, 0, 0, time.UTC), 1}, // a long gap fires once
		{time.Date(2026, 11, 29, 10, 35, 0, 0, time.UTC), 1},
	}
	for i, st := range steps {
		now = st.to
		if got := s.Tick(context.Background()); got != st.fire {
			t.Fatalf("step %d at %s: fired %d, want %d", i, now.Format(time.TimeOnly), got, st.fire)
		}
	}
	if got := target.fired[0]; !got.Equal(time.Date(2026, 11, 29, 10, 5, 0, 0, time.UTC)) {
		t.Fatalf("first scheduled time %s", got)
	}
}

func TestSchedulerTimeZone(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Skip("no zone database")
	}
	// 09:00 in Tokyo is 00:00 UTC.
	now := time.Date(2026, 11, 28, 23, 59, 0, 0, time.UTC)
	target := &fakeCron{entries: []CronEntry{{PipelineID: "p", Expr: "0 9 * * *", Timezone: "Asia/Tokyo"}}}
	s := NewScheduler(target, func() time.Time { return now }, time.UTC, slog.New(slog.DiscardHandler))
	s.Tick(context.Background())
	now = time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	if s.Tick(context.Background()) != 1 {
		t.Fatal("did not fire at 09:00 Tokyo")
	}
	if got := target.fired[0].In(tokyo).Hour(); got != 9 {
		t.Fatalf("fired for hour %d Tokyo", got)
	}
}

func TestParseCron(t *testing.T) {
	for _, bad := range []string{"", "* * *", "61 * * * *", "CRON_TZ=UTC * * * * *"} {
		if _, _, err := ParseCron(bad, ""); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, _, err := ParseCron("* * * * *", "Mars/Olympus"); err == nil {
		t.Error("unknown zone accepted")
	}
	if _, _, err := ParseCron("@hourly", "UTC"); err != nil {
		t.Error(err)
	}
}

type fakeHooks struct {
	fired []Push
}

func (f *fakeHooks) Webhooks(_ context.Context, name string) ([]WebhookConfig, error) {
	if name != "app" {
		return nil, ErrNoPipeline
	}
	return []WebhookConfig{{Secret: "s3cret", Branches: []string{"main"}}}, nil
}

func (f *fakeHooks) FireWebhook(_ context.Context, _ string, p Push) (string, int64, error) {
	f.fired = append(f.fired, p)
	return "run-1", 1, nil
}

func TestWebhookHandler(t *testing.T) {
	hooks := &fakeHooks{}
	h := WebhookHandler(hooks, slog.New(slog.DiscardHandler))
	push := []byte(`{"ref":"refs/heads/main","after":"abc123","head_commit":{"id":"abc123","message":"fix","author":{"name":"Ada","email":"ada@example.com"}},"repository":{"full_name":"org/app"}}`)
	other := []byte(`{"ref":"refs/heads/dev","after":"def"}`)
	cases := []struct {
		name, path, sig string
		body            []byte
		code            int
	}{
		{"good", "/hooks/app", Sign("s3cret", push), push, http.StatusCreated},
		{"bad signature", "/hooks/app", Sign("wrong", push), push, http.StatusUnauthorized},
		{"no signature", "/hooks/app", "", push, http.StatusUnauthorized},
		{"tampered body", "/hooks/app", Sign("s3cret", push), append([]byte(" "), push...), http.StatusUnauthorized},
		{"other branch", "/hooks/app", Sign("s3cret", other), other, http.StatusAccepted},
		{"unknown pipeline", "/hooks/nope", Sign("s3cret", push), push, http.StatusNotFound},
	}
	for _, c := range cases {
		req := httptest.NewRequest(http.MethodPost, c.path, bytes.NewReader(c.body))
		if c.sig != "" {
			req.Header.Set(SignatureHeader, c.sig)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, rec.Code, rec.Body, c.code)
		}
	}
	if len(hooks.fired) != 1 {
		t.Fatalf("fired %d runs, want 1", len(hooks.fired))
	}
	p := hooks.fired[0]
	if p.Commit != "abc123" || p.Branch != "main" || p.Author != "Ada <ada@example.com>" || p.Repository != "org/app" {
		t.Fatalf("push %+v", p)
	}
}

func FuzzParsePush(f *testing.F) {
	f.Add([]byte(`{"ref":"refs/heads/main","after":"abc","head_commit":{"id":"abc","message":"m","author":{"name":"Ada","email":"a@x"}},"repository":{"full_name":"o/r"}}`))
	f.Add([]byte(`{"ref":"refs/heads/dev","checkout_sha":"def","user_name":"Bob","repository":{"name":"r"}}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParsePush(body) // must not panic
		if err != nil {
			return
		}
		env := p.Env()
		for _, k := range []string{"ARCADE_COMMIT", "ARCADE_BRANCH", "ARCADE_AUTHOR"} {
			if _, ok := env[k]; !ok {
				t.Fatalf("env lacks %s: %v", k, env)
			}
		}
		if strings.HasPrefix(p.Branch, "refs/heads/") {
			t.Fatalf("branch keeps its prefix: %q", p.Branch)
		}
	})
}
