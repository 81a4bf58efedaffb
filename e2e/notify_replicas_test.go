package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/internal/pgtest"
)

// TestNotificationsOncePerEvent: two replicas on one PostgreSQL database
// with the same rule see every event (they relay them to each other), yet
// each failure is notified once, by the replica where it happened. Each
// replica delivers with a single worker in order, so a later notification
// from it proves the earlier events were not sent again.
func TestNotificationsOncePerEvent(t *testing.T) {
	dir := t.TempDir()
	webhook := filepath.Join(dir, "webhook.wasm")
	buildPlugin(t, "../plugins/webhook", webhook)
	rcv := newReceiver(t, 0, false)
	pluginsPath := filepath.Join(dir, "plugins.yaml")
	plugins := fmt.Sprintf(`plugins:
  - name: webhook
    path: %s
    kind: notify
    config: {url: "%s/hook"}
    grants: {allowed_hosts: [127.0.0.1], timeout: 10s, memory_limit_mib: 32, max_instances: 1}
`, webhook, rcv.URL)
	cfgPath := filepath.Join(dir, "server.yaml")
	cfg := `
notify:
  - {name: jobs, on: [job.failed], plugin: webhook, template: "{{.Job}} {{.Status}}"}
notify_delivery: {workers: 1}
`
	for path, body := range map[string]string{pluginsPath: plugins, cfgPath: cfg} {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dsn := pgtest.Start(t)
	a := newCluster(t, dsn, "--config", cfgPath, "--plugins-config", pluginsPath)
	b := newCluster(t, dsn, "--config", cfgPath, "--plugins-config", pluginsPath)
	a.startAgent("on-a", 1, "side=a")
	b.startAgent("on-b", 1, "side=b")

	bodies := func() []string {
		got, _ := rcv.received()
		var out []string
		for _, g := range got {
			out = append(out, fmt.Sprint(g["body"]))
		}
		slices.Sort(out)
		return out
	}
	fail := func(c *cluster, name, side string) {
		t.Helper()
		// Created on the other replica: the event happens where the agent is.
		other := map[*cluster]*cluster{a: b, b: a}[c]
		j := other.create(&jobv1.CreateJobRequest{Name: name, Commands: []string{"exit 1"}, Selector: "side=" + side})
		c.waitStatus(j.GetId(), failed)
		c.waitFor("the notification of "+name, func() bool { return slices.Contains(bodies(), name+" failed") })
	}
	fail(a, "first", "a")
	fail(b, "second", "b")
	fail(a, "third", "a")
	if got := bodies(); !slices.Equal(got, []string{"first failed", "second failed", "third failed"}) {
		t.Errorf("the receiver got %q, want each failure once", got)
	}
	// A replica logs a delivery once the receiver has answered: wait for
	// the third line, then there must be no more.
	delivered := func() int {
		return len(a.server.grepLog("notification delivered")) + len(b.server.grepLog("notification delivered"))
	}
	a.waitFor("three deliveries logged", func() bool { return delivered() >= 3 })
	if n := delivered(); n != 3 {
		t.Errorf("%d deliveries logged by the replicas, want 3", n)
	}
}
