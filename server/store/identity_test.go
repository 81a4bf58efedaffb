package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-arcade/arcade/server/store"
)

func newSecret(id, name, scope, target string) *store.Secret {
	return &store.Secret{ID: id, Name: name, Scope: scope, Target: target, Value: []byte("sealed-" + id), KeyID: "k1",
		Version: 1, CreatedAt: t0, UpdatedAt: t0, CreatedBy: "admin", UpdatedBy: "admin"}
}

// TestSecretScopes: a name is unique within its scope; a consumer finds the
// secrets of the scopes it may use, the pipeline's over the source's over
// the global one; a pipeline's secrets follow its renaming and go with it.
func TestSecretScopes(t *testing.T) {
	eachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		p := &store.Pipeline{ID: "p1", Name: "deploy", Spec: []byte("{}"), CreatedAt: t0, UpdatedAt: t0}
		if err := s.CreatePipeline(ctx, p); err != nil {
			t.Fatal(err)
		}
		r := &store.PipelineRun{ID: "r1", PipelineID: "p1", PipelineName: "deploy", Status: "success", Trigger: "webhook",
			Params: map[string]string{}, Spec: []byte("{}"), CreatedAt: t0, UpdatedAt: t0, Source: "github.com/org/app"}
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
		for _, sec := range []*store.Secret{
			newSecret("g", "TOKEN", store.ScopeGlobal, ""),
			newSecret("s", "TOKEN", store.ScopeSource, "github.com/org/app"),
			newSecret("p", "TOKEN", store.ScopePipeline, "deploy"),
			newSecret("g2", "ONLY_GLOBAL", store.ScopeGlobal, ""),
			newSecret("s2", "ONLY_SOURCE", store.ScopeSource, "github.com/org/app"),
			newSecret("o", "OTHER", store.ScopePipeline, "other"),
		} {
			if err := s.CreateSecret(ctx, sec); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CreateSecret(ctx, newSecret("dup", "TOKEN", store.ScopeGlobal, "")); !errors.Is(err, store.ErrConflict) {
			t.Errorf("a name taken in its scope: %v, want ErrConflict", err)
		}
		names := []string{"TOKEN", "ONLY_GLOBAL", "ONLY_SOURCE", "OTHER"}
		find := func(q store.SecretQuery) map[string]string {
			t.Helper()
			q.Names = names
			got, err := s.FindSecrets(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]string{}
			for n, sec := range got {
				out[n] = sec.ID
			}
			return out
		}
		check := func(what string, got, want map[string]string) {
			t.Helper()
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: %v, want %v", what, got, want)
			}
		}
		check("global only", find(store.SecretQuery{}), map[string]string{"TOKEN": "g", "ONLY_GLOBAL": "g2"})
		check("pipeline by id", find(store.SecretQuery{Pipeline: "p1"}), map[string]string{"TOKEN": "p", "ONLY_GLOBAL": "g2"})
		check("source", find(store.SecretQuery{Source: "github.com/org/app"}), map[string]string{"TOKEN": "s", "ONLY_GLOBAL": "g2", "ONLY_SOURCE": "s2"})
		check("run's source and pipeline by name", find(store.SecretQuery{Pipeline: "deploy", RunID: "r1"}),
			map[string]string{"TOKEN": "p", "ONLY_GLOBAL": "g2", "ONLY_SOURCE": "s2"})
		check("another source", find(store.SecretQuery{Source: "github.com/org/other"}), map[string]string{"TOKEN": "g", "ONLY_GLOBAL": "g2"})

		have, err := s.SecretNamesIn(ctx, names, "deploy", false)
		if err != nil || !have["TOKEN"] || !have["ONLY_GLOBAL"] || have["ONLY_SOURCE"] || have["OTHER"] {
			t.Errorf("SecretNamesIn(deploy) = %v, %v", have, err)
		}
		if have, _ := s.SecretNamesIn(ctx, names, "deploy", true); !have["ONLY_SOURCE"] {
			t.Errorf("SecretNamesIn with any source = %v", have)
		}

		// Rename: the pipeline's secret follows.
		if _, err := s.ModifyPipeline(ctx, "p1", func(p *store.Pipeline) error { p.Name = "ship"; return nil }); err != nil {
			t.Fatal(err)
		}
		if sec, err := s.GetSecret(ctx, store.ScopePipeline, "ship", "TOKEN"); err != nil || sec.ID != "p" {
			t.Errorf("after the rename: %v %v", sec, err)
		}
		check("renamed pipeline", find(store.SecretQuery{Pipeline: "p1"}), map[string]string{"TOKEN": "p", "ONLY_GLOBAL": "g2"})
		// Delete: its secrets go; another pipeline's stay.
		if err := s.DeletePipeline(ctx, "p1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetSecret(ctx, store.ScopePipeline, "ship", "TOKEN"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a deleted pipeline's secret: %v", err)
		}
		if _, err := s.GetSecret(ctx, store.ScopePipeline, "other", "OTHER"); err != nil {
			t.Errorf("another pipeline's secret: %v", err)
		}

		up, err := s.ModifySecret(ctx, store.ScopeGlobal, "", "TOKEN", func(sec *store.Secret) error {
			sec.Value, sec.Version = []byte("rotated"), sec.Version+1
			return nil
		})
		if err != nil || up.Version != 2 {
			t.Fatalf("ModifySecret: %v %v", up, err)
		}
		list, total, err := s.ListSecrets(ctx, store.SecretFilter{Scope: store.ScopeGlobal}, store.Page{})
		if err != nil || total != 2 || len(list) != 2 || list[0].Name != "ONLY_GLOBAL" {
			t.Errorf("ListSecrets(global) = %d %v", total, err)
		}
		if _, err := s.DeleteSecret(ctx, store.ScopeGlobal, "", "TOKEN"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DeleteSecret(ctx, store.ScopeGlobal, "", "TOKEN"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleting twice: %v", err)
		}
	})
}

// TestSealedValuesReplace: rekeying sees every sealed column and replaces
// a value only where it is still the one read.
func TestSealedValuesReplace(t *testing.T) {
	eachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if err := s.CreateSecret(ctx, newSecret("a", "A", store.ScopeGlobal, "")); err != nil {
			t.Fatal(err)
		}
		j := newJob("j1", t0)
		j.Secrets = []byte("sealed-job")
		if err := s.CreateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateJob(ctx, newJob("j2", t0)); err != nil { // no secrets
			t.Fatal(err)
		}
		p := &store.Pipeline{ID: "p", Name: "p", Spec: []byte("{}"), Secrets: []byte("sealed-pipeline"), CreatedAt: t0, UpdatedAt: t0}
		if err := s.CreatePipeline(ctx, p); err != nil {
			t.Fatal(err)
		}
		var seen []string
		err := s.SealedValues(ctx, func(v []byte) bool { return bytes.Equal(v, []byte("sealed-pipeline")) }, func(v store.Sealed) error {
			seen = append(seen, v.Table+"/"+v.ID+"/"+string(v.AAD))
			return nil
		})
		if err != nil || fmt.Sprint(seen) != "[secrets/a/a jobs/j1/]" {
			t.Fatalf("SealedValues = %v, %v", seen, err)
		}
		v := store.Sealed{Table: "secrets", ID: "a", Value: []byte("sealed-a")}
		if err := s.ReplaceSealed(ctx, v, []byte("resealed"), "k2"); err != nil {
			t.Fatal(err)
		}
		if err := s.ReplaceSealed(ctx, v, []byte("again"), "k3"); !errors.Is(err, store.ErrChanged) {
			t.Errorf("replacing a value that changed: %v, want ErrChanged", err)
		}
		sec, _ := s.GetSecret(ctx, store.ScopeGlobal, "", "A")
		if string(sec.Value) != "resealed" || sec.KeyID != "k2" {
			t.Errorf("secret after re-seal: %q under %s", sec.Value, sec.KeyID)
		}
		counts, err := s.CountSealedByKey(ctx, func(b []byte) string { return string(b) })
		if err != nil || counts["resealed"] != 1 || counts["sealed-job"] != 1 || counts["sealed-pipeline"] != 1 {
			t.Errorf("CountSealedByKey = %v, %v", counts, err)
		}
	})
}

func TestNamedTokens(t *testing.T) {
	eachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		tok := &store.APIToken{ID: "t1", Name: "ci", Owner: "team", Scope: "read", Hash: "h1", CreatedAt: t0, CreatedBy: "api_token"}
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateToken(ctx, &store.APIToken{ID: "t2", Name: "ci", Scope: "read", Hash: "h2", CreatedAt: t0}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("a taken name: %v", err)
		}
		exp := &store.APIToken{ID: "t3", Name: "old", Scope: "write", Hash: "h3", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		if err := s.CreateToken(ctx, exp); err != nil {
			t.Fatal(err)
		}
		if got, err := s.TokenByHash(ctx, "h1"); err != nil || got.Name != "ci" {
			t.Errorf("TokenByHash = %v %v", got, err)
		}
		if _, err := s.TokenByHash(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown hash: %v", err)
		}
		now := t0.Add(2 * time.Hour)
		active, total, err := s.ListTokens(ctx, false, now, store.Page{})
		if err != nil || total != 1 || active[0].Name != "ci" {
			t.Errorf("active tokens: %d %v", total, err)
		}
		if err := s.TouchToken(ctx, "t1", now); err != nil {
			t.Fatal(err)
		}
		r, err := s.RevokeToken(ctx, "ci", "admin", now)
		if err != nil || r.RevokedAt.IsZero() || r.Active(now) || !r.LastUsedAt.Equal(now) {
			t.Fatalf("RevokeToken = %+v, %v", r, err)
		}
		again, _ := s.RevokeToken(ctx, "t1", "someone else", now.Add(time.Hour))
		if again.RevokedBy != "admin" {
			t.Errorf("a second revocation replaced the first: %s", again.RevokedBy)
		}
		if _, total, _ := s.ListTokens(ctx, true, now, store.Page{}); total != 2 {
			t.Errorf("all tokens: %d", total)
		}
	})
}

// TestAuditBounds: the log keeps the newest entries within its count and
// age bounds; filters find by actor and method.
func TestAuditBounds(t *testing.T) {
	eachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		var events []*store.AuditEvent
		for i := range 50 {
			events = append(events, &store.AuditEvent{ID: fmt.Sprintf("%04d", i), At: t0.Add(time.Duration(i) * time.Minute),
				Actor: []string{"alice", "bob"}[i%2], Method: "arcade.job.v1.JobService/CancelJob", Outcome: "OK"})
		}
		events[7].Method = "arcade.secret.v1.SecretService/CreateSecret"
		if err := s.AddAuditEvents(ctx, events); err != nil {
			t.Fatal(err)
		}
		got, total, err := s.ListAuditEvents(ctx, store.AuditFilter{Actor: "bob"}, store.Page{Limit: 3})
		if err != nil || total != 25 || len(got) != 3 || got[0].ID != "0049" {
			t.Errorf("bob's entries: %d, first %v, %v", total, got, err)
		}
		if got, total, _ := s.ListAuditEvents(ctx, store.AuditFilter{Method: "Secret"}, store.Page{}); total != 1 || got[0].ID != "0007" {
			t.Errorf("secret entries: %d", total)
		}
		n, err := s.PruneAuditEvents(ctx, t0.Add(10*time.Minute), 30)
		if err != nil || n != 20 {
			t.Fatalf("prune: %d removed, %v; want 20 (10 by age, then down to 30)", n, err)
		}
		left, total, _ := s.ListAuditEvents(ctx, store.AuditFilter{}, store.Page{})
		if total != 30 || left[0].ID != "0049" || left[29].ID != "0020" {
			t.Errorf("left %d entries, newest %s oldest %s", total, left[0].ID, left[len(left)-1].ID)
		}
	})
}

// TestAgentTrust: an agent is trusted when marked or carrying a trusted
// label an admin set, whichever way its labels or the trusted labels
// change; a label of its own never makes it trusted; the mark and the
// admin's labels survive registering again and win over its own.
func TestAgentTrust(t *testing.T) {
	eachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		reg := func(name string, labels map[string]string) *store.Agent {
			t.Helper()
			a, err := s.RegisterAgent(ctx, &store.Agent{ID: "id-" + name, Name: name, Labels: labels, MaxJobs: 1, TokenHash: "t-" + name,
				Online: true, RegisteredAt: t0, LastHeartbeatAt: t0})
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
		admin := func(id, k, v string) *store.Agent {
			t.Helper()
			a, err := s.ModifyAgent(ctx, id, func(a *store.Agent) error {
				if a.AdminLabels == nil {
					a.AdminLabels = map[string]string{}
				}
				a.AdminLabels[k] = v
				return nil
			}, "labels", "admin_labels")
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
		reg("a", map[string]string{"pool": "deploy"}) // its own claim
		reg("b", map[string]string{"pool": "build"})
		if changed, err := s.SetTrustedLabels(ctx, []store.TrustedLabel{{Key: "pool", Value: "deploy"}}); err != nil || len(changed) != 0 {
			t.Fatalf("SetTrustedLabels changed %v, %v: an agent's own label made it trusted", changed, err)
		}
		if a := admin("id-a", "pool", "deploy"); !a.Trusted {
			t.Error("a labelled by an admin: not trusted")
		}
		// b takes the label on by itself: not trusted; from an admin: trusted.
		b, err := s.ModifyAgent(ctx, "id-b", func(a *store.Agent) error { a.Labels["pool"] = "deploy"; return nil }, "labels")
		if err != nil || b.Trusted {
			t.Errorf("b with its own trusted label: trusted=%v %v", b.Trusted, err)
		}
		if b := admin("id-b", "pool", "deploy"); !b.Trusted {
			t.Error("b labelled by an admin: not trusted")
		}
		// a cannot drop the admin's label itself, not even by registering
		// again; the admin can.
		if a, _ := s.ModifyAgent(ctx, "id-a", func(a *store.Agent) error { a.Labels["pool"] = "x"; return nil }, "labels"); !a.Trusted || a.Labels["pool"] != "deploy" {
			t.Errorf("a overrode the admin's label: trusted %v, labels %v", a.Trusted, a.Labels)
		}
		if a := reg("a", map[string]string{"pool": "x"}); !a.Trusted || a.Labels["pool"] != "deploy" {
			t.Errorf("registering again dropped the admin's label: %+v", a)
		}
		if a := admin("id-a", "pool", "x"); a.Trusted {
			t.Error("a without the trusted label is still trusted")
		}
		if a, _ := s.GetAgent(ctx, "id-a"); a.Trusted {
			t.Error("stored: a is still trusted")
		}
		// Marked by an admin: trusted whatever its labels, across a new
		// registration.
		if a, err := s.SetAgentTrust(ctx, "a", true); err != nil || !a.Trusted || !a.TrustMarked {
			t.Fatalf("SetAgentTrust: %+v %v", a, err)
		}
		if a := reg("a", map[string]string{}); !a.Trusted || !a.TrustMarked {
			t.Errorf("registering again dropped the mark: %+v", a)
		}
		if trusted, _ := s.TrustedAgents(ctx); len(trusted) != 2 {
			t.Errorf("trusted agents: %d, want a and b", len(trusted))
		}
		if changed, _ := s.SetTrustedLabels(ctx, nil); len(changed) != 1 || changed[0].Name != "b" || changed[0].Trusted {
			t.Errorf("clearing the labels changed %v", changed)
		}
	})
}

// TestClaimRefusesUntrustedJobsToTrustedAgents: whatever the caller's pick
// says (a stale copy of the agent row, say), a job that may not use trusted
// agents is not claimed by one; a job that may is.
func TestClaimRefusesUntrustedJobsToTrustedAgents(t *testing.T) {
	eachStore(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		agent, err := s.RegisterAgent(ctx, &store.Agent{ID: "ag", Name: "deploy-1", Labels: map[string]string{}, MaxJobs: 5,
			TokenHash: "t", Online: true, RegisteredAt: t0, LastHeartbeatAt: t0})
		if err != nil {
			t.Fatal(err)
		}
		stale := *agent // read before it became trusted
		if _, err := s.SetAgentTrust(ctx, "ag", true); err != nil {
			t.Fatal(err)
		}
		untrusted, trusted := newJob("u", t0), newJob("t", t0.Add(time.Second))
		trusted.TrustedAgents = true
		for _, j := range []*store.Job{untrusted, trusted} {
			if err := s.CreateJob(ctx, j); err != nil {
				t.Fatal(err)
			}
		}
		claims, err := s.ClaimBatch(ctx, t0, t0.Add(time.Minute), func(*store.Job) *store.Agent { return &stale }, func() bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		if len(claims) != 1 || claims[0].Job.ID != "t" {
			t.Fatalf("claimed %d job(s): %v; want only the trusted one", len(claims), claims)
		}
		if j, _ := s.GetJob(ctx, "u"); j.Status != "pending" || j.AgentID != "" {
			t.Errorf("the untrusted job: %s on %q", j.Status, j.AgentID)
		}
	})
}
