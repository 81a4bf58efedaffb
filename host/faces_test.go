package host

import (
	"context"
	"errors"
	"strings"
	"testing"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// asKind returns a kitchen spec whose module declares kind k.
func asKind(name, kind string) Spec {
	s := kitchen(name)
	s.Kind = kind
	s.Config = map[string]string{"kind": "KIND_" + strings.ToUpper(kind)}
	return s
}

func TestTypedFacesCallEveryFunction(t *testing.T) {
	t.Parallel()
	m := mustLoad(t, asKind("ci", "ci"), asKind("cd", "cd"), asKind("sec", "security"),
		asKind("notify", "notify"), asKind("store", "storage"), asKind("custom", "custom"))
	ctx := context.Background()
	step := &pluginv1.StepRequest{Context: &pluginv1.StepContext{JobId: "j1", Workspace: "/workspace"}}
	deploy := &pluginv1.DeployRequest{Environment: "staging"}
	summaries := map[string]func() (string, error){}
	add := func(name string, f func() (string, error)) { summaries[name] = f }

	ci, err := m.GetCIPlugin("ci")
	if err != nil {
		t.Fatal(err)
	}
	add("build", func() (string, error) { r, err := ci.Build(ctx, step); return r.GetSummary(), err })
	add("test", func() (string, error) { r, err := ci.Test(ctx, step); return r.GetSummary(), err })
	add("lint", func() (string, error) { r, err := ci.Lint(ctx, step); return r.GetSummary(), err })
	cd, err := m.GetCDPlugin("cd")
	if err != nil {
		t.Fatal(err)
	}
	add("deploy", func() (string, error) { r, err := cd.Deploy(ctx, deploy); return r.GetSummary(), err })
	add("rollback", func() (string, error) { r, err := cd.Rollback(ctx, deploy); return r.GetSummary(), err })
	sec, err := m.GetSecurityPlugin("sec")
	if err != nil {
		t.Fatal(err)
	}
	add("scan", func() (string, error) { r, err := sec.Scan(ctx, step); return r.GetSummary(), err })
	add("audit", func() (string, error) { r, err := sec.Audit(ctx, step); return r.GetSummary(), err })
	n, err := m.GetNotifyPlugin("notify")
	if err != nil {
		t.Fatal(err)
	}
	text := func(ms []*pluginv1.Message) string {
		if len(ms) == 0 {
			return ""
		}
		f, _, _ := strings.Cut(ms[0].GetText(), " {")
		return f
	}
	add("send", func() (string, error) {
		r, err := n.Send(ctx, &pluginv1.SendRequest{Title: "hi"})
		return text(r.GetMessages()), err
	})
	add("send_template", func() (string, error) {
		r, err := n.SendTemplate(ctx, &pluginv1.SendTemplateRequest{Template: "t"})
		return text(r.GetMessages()), err
	})
	st, err := m.GetStoragePlugin("store")
	if err != nil {
		t.Fatal(err)
	}
	add("save", func() (string, error) {
		r, err := st.Save(ctx, &pluginv1.SaveRequest{Key: "k"})
		return text(r.GetMessages()), err
	})
	add("load", func() (string, error) {
		r, err := st.Load(ctx, &pluginv1.LoadRequest{Key: "k"})
		return text(r.GetMessages()), err
	})
	add("delete", func() (string, error) {
		r, err := st.Delete(ctx, &pluginv1.DeleteRequest{Key: "k"})
		return text(r.GetMessages()), err
	})
	add("list", func() (string, error) {
		r, err := st.List(ctx, &pluginv1.ListRequest{})
		return text(r.GetMessages()), err
	})
	for fn, call := range summaries {
		got, err := call()
		if err != nil {
			t.Errorf("%s: %v", fn, err)
			continue
		}
		if want := fn + " 1.0.0"; got != want {
			t.Errorf("%s answered %q, want %q", fn, got, want)
		}
	}
	mustEcho(t, m, "custom")
}

func TestTypedFaceRefusesWrongKind(t *testing.T) {
	t.Parallel()
	m := mustLoad(t, asKind("notify", "notify"))
	_, err := m.GetCIPlugin("notify")
	if !errors.Is(err, ErrWrongKind) || err.Error() != "plugin notify: wrong kind: it is a notify plugin, not ci" {
		t.Fatalf("GetCIPlugin(notify) = %v", err)
	}
	p, _ := m.Get("notify")
	if _, err := p.Call(context.Background(), "execute", []byte("{}")); !errors.Is(err, ErrUnknownFunction) {
		t.Fatalf("undeclared function: %v", err)
	}
}

func TestFailurePolicy(t *testing.T) {
	t.Parallel()
	open := asKind("open", "custom")
	open.FailurePolicy = "fail_open"
	m := mustLoad(t, open, asKind("closed", "custom"))
	events := recordEvents(t, m)
	ctx := context.Background()

	resp, err := execute(ctx, t, m, "open", "panic", nil)
	if err != nil {
		t.Fatalf("fail-open call returned %v", err)
	}
	if resp.GetStatus() != pluginv1.Status_STATUS_SKIPPED || !strings.Contains(resp.GetMessages()[0].GetText(), "plugin open crashed") {
		t.Fatalf("fail-open response %v", resp)
	}
	ev, _ := events.wait(t, 0, 0, func(e Event) bool { return e.Type == EventCallFailed })
	if ev.Plugin != "open" || ev.Function != "execute" || !errors.Is(ev.Err, ErrCrashed) {
		t.Fatalf("event %+v", ev)
	}
	if _, err := execute(ctx, t, m, "closed", "panic", nil); !errors.Is(err, ErrCrashed) {
		t.Fatalf("fail-closed call returned %v", err)
	}
}

func messageFor(title string) *pluginv1.SendRequest {
	return &pluginv1.SendRequest{Title: title, Severity: pluginv1.Severity_SEVERITY_HIGH}
}
