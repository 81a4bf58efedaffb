package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/client"
	"github.com/go-arcade/arcade/internal/pgtest"
)

// metrics is one scrape of /metrics: values by series,
// `name{label="value",…}` with labels in name order; a histogram gives its
// _count and _sum.
type metrics map[string]float64

// scrape reads the server's /metrics.
func (c *cluster) scrape() metrics {
	c.t.Helper()
	resp, err := http.Get("http://" + c.metricsAddr + "/metrics")
	if err != nil {
		c.t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("scrape: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		c.t.Fatalf("scrape: parse: %v", err)
	}
	out := metrics{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			slices.Sort(labels)
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				base, rest, _ := strings.Cut(key, "{")
				if rest != "" {
					rest = "{" + rest
				}
				out[base+"_count"+rest] = float64(m.GetHistogram().GetSampleCount())
				out[base+"_sum"+rest] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

// httpStatus returns the status code and body of a GET on the metrics
// listener.
func (c *cluster) httpStatus(path string) (int, string) {
	c.t.Helper()
	resp, err := http.Get("http://" + c.metricsAddr + path)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// grpcHealth returns the server's gRPC health status.
func (c *cluster) grpcHealth() healthpb.HealthCheckResponse_ServingStatus {
	c.t.Helper()
	conn, err := client.DialTLS(c.addr, client.Static(""), c.tls)
	if err != nil {
		c.t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN
	}
	return resp.GetStatus()
}

// TestMetricsMoveWithWork scrapes /metrics before and after jobs with log
// output, a plugin call and a plugin reload, and checks that the counters
// moved by what was done.
func TestMetricsMoveWithWork(t *testing.T) {
	pluginDir := t.TempDir()
	buildPlugin(t, "../plugins/semver", filepath.Join(pluginDir, "semver.wasm"))
	eachDB(t, func(t *testing.T, dsn string) {
		c := newClusterWithMetrics(t, dsn, "--plugin-dirs", pluginDir)
		if code, body := c.httpStatus("/healthz"); code != http.StatusOK {
			t.Errorf("/healthz: %d %s", code, body)
		}
		if code, body := c.httpStatus("/readyz"); code != http.StatusOK {
			t.Errorf("/readyz: %d %s", code, body)
		}
		c.startAgent("counter", 2)
		c.waitFor("the agent's channel and the plugin's load to count", func() bool {
			m := c.scrape()
			return m[`arcade_stream_subscribers{stream="agent_channel"}`] == 1 &&
				m[`arcade_plugin_events_total{event="loaded",plugin="semver"}`] == 1
		})
		before := c.scrape()

		// A stream the test holds open shows while it is open.
		ctx, cancel := context.WithCancel(context.Background())
		events, err := jobv1.NewStreamServiceClient(c.conn).StreamEvents(ctx, &jobv1.StreamEventsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		c.waitFor("the events stream to count", func() bool {
			return c.scrape()[`arcade_stream_subscribers{stream="events"}`] == 1
		})

		const jobs, lines = 3, 700
		var ids []string
		for i := range jobs {
			ids = append(ids, c.create(&jobv1.CreateJobRequest{Name: fmt.Sprint("printer-", i),
				Commands: []string{fmt.Sprintf("seq 1 %d", lines)}}).GetId())
		}
		ids = append(ids, c.create(&jobv1.CreateJobRequest{Name: "breaks", Commands: []string{"echo about to fail", "exit 3"}}).GetId())
		for _, id := range ids {
			c.waitStatus(id, success, failed)
		}
		if out, err := c.cli("plugin", "call", "semver", "execute", "--input", `{"action":"bump","params":{"current":"v1.2.3","commits":["feat: x"]}}`); err != nil || !strings.Contains(out, "v1.3.0") {
			t.Errorf("arcade plugin call: %v\n%s", err, out)
		}
		if out, err := c.cli("plugin", "reload", "semver"); err != nil {
			t.Errorf("arcade plugin reload: %v\n%s", err, out)
		}
		cancel()
		_, _ = events.Recv()
		c.waitFor("the events stream to be gone", func() bool {
			return c.scrape()[`arcade_stream_subscribers{stream="events"}`] == 0
		})
		c.waitFor("the agent to be idle", func() bool {
			return c.scrape()[`arcade_agents{status="idle"}`] == 1
		})

		after := c.scrape()
		moved := func(series string) float64 { return after[series] - before[series] }
		for series, want := range map[string]float64{
			"arcade_jobs_created_total":                                    jobs + 1,
			`arcade_jobs_finished_total{status="success"}`:                 jobs,
			`arcade_jobs_finished_total{status="failed"}`:                  1,
			"arcade_job_queue_wait_seconds_count":                          jobs + 1,
			"arcade_job_dispatch_latency_seconds_count":                    jobs + 1,
			`arcade_plugin_calls_total{outcome="ok",plugin="semver"}`:      1,
			`arcade_plugin_call_duration_seconds_count{plugin="semver"}`:   1,
			`arcade_plugin_reloads_total{plugin="semver"}`:                 1,
			`arcade_plugin_events_total{event="reloaded",plugin="semver"}`: 1,
		} {
			if got := moved(series); got != want {
				t.Errorf("%s moved by %v, want %v", series, got, want)
			}
		}
		if got := moved("arcade_log_lines_ingested_total"); got < jobs*lines+1 {
			t.Errorf("log lines ingested moved by %v, want at least the %d printed", got, jobs*lines+1)
		}
		if got := moved("arcade_log_bytes_ingested_total"); got < jobs*lines {
			t.Errorf("log bytes ingested moved by %v, want at least one per line", got)
		}
		for series, want := range map[string]float64{
			"arcade_job_queue_depth":          0,
			`arcade_jobs{status="pending"}`:   0,
			`arcade_jobs{status="running"}`:   0,
			`arcade_jobs{status="success"}`:   jobs,
			`arcade_jobs{status="failed"}`:    1,
			`arcade_agents{status="idle"}`:    1,
			`arcade_agents{status="offline"}`: 0,
		} {
			if got, ok := after[series]; !ok || got != want {
				t.Errorf("%s = %v (present: %v), want %v", series, got, ok, want)
			}
		}
		if after[`arcade_store_query_duration_seconds_count{operation="SELECT"}`] <= before[`arcade_store_query_duration_seconds_count{operation="SELECT"}`] {
			t.Error("store query latency did not count the SELECTs of the run")
		}
		if after["go_goroutines"] == 0 || after["process_resident_memory_bytes"] == 0 {
			t.Error("the Go and process collectors are missing")
		}
	})
}

// TestReadinessFollowsDatabase stops PostgreSQL under a server: /readyz
// turns 503 naming the store and the gRPC health check NOT_SERVING, while
// /healthz stays 200; once the database is back, both are healthy again.
func TestReadinessFollowsDatabase(t *testing.T) {
	c := newClusterWithMetrics(t, pgtest.Start(t))
	if code, body := c.httpStatus("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz before the outage: %d %s", code, body)
	}
	if got := c.grpcHealth(); got != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health before the outage: %v", got)
	}

	resume := pgtest.Outage(t)
	var body string
	c.waitFor("/readyz to fail", func() bool {
		var code int
		code, body = c.httpStatus("/readyz")
		return code == http.StatusServiceUnavailable
	})
	if !strings.Contains(body, "store") {
		t.Errorf("/readyz during the outage says %q, want the store named", body)
	}
	c.waitFor("gRPC health NOT_SERVING", func() bool {
		return c.grpcHealth() == healthpb.HealthCheckResponse_NOT_SERVING
	})
	if code, body := c.httpStatus("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz during the outage: %d %s (the process is alive)", code, body)
	}
	if code, _ := c.httpStatus("/metrics"); code != http.StatusOK {
		t.Errorf("/metrics during the outage: %d, want 200 without the database's gauges", code)
	}

	resume()
	c.waitFor("/readyz to pass again", func() bool {
		code, _ := c.httpStatus("/readyz")
		return code == http.StatusOK
	})
	c.waitFor("gRPC health SERVING again", func() bool {
		return c.grpcHealth() == healthpb.HealthCheckResponse_SERVING
	})
}

// TestDashboardListenerServesMetrics: the dashboard links /metrics, so its
// listener serves it (and the health checks) without a token.
func TestDashboardListenerServesMetrics(t *testing.T) {
	httpAddr := freeAddr(t)
	newCluster(t, "sqlite://"+t.TempDir()+"/arcade.db", "--http-listen", httpAddr)
	for path, want := range map[string]string{"/metrics": "arcade_jobs_created_total", "/healthz": "ok", "/readyz": "ok"} {
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
}
