package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-arcade/arcade/core/jobstate"
)

// State is where the gauges of jobs and agents are read, at each scrape:
// the database holds the truth, so the figures are right after a restart
// and across replicas.
type State interface {
	// JobsByStatus counts jobs by status name ("pending").
	JobsByStatus(ctx context.Context) (map[string]int, error)
	// AgentsByStatus counts agents by status: offline, idle, online (some
	// jobs running), busy (every slot taken).
	AgentsByStatus(ctx context.Context) (map[string]int, error)
}

// agentStatuses are the values of arcade_agents' status label.
var agentStatuses = []string{"offline", "idle", "online", "busy"}

// WatchState registers the gauges read from st at each scrape, each read
// bounded by timeout. A read that fails leaves its gauges out of that scrape
// (and is logged).
func WatchState(reg prometheus.Registerer, st State, timeout time.Duration, log *slog.Logger) {
	reg.MustRegister(&stateCollector{st: st, timeout: timeout, log: log})
}

var (
	jobsDesc = prometheus.NewDesc(namespace+"_jobs", "Jobs by current status (all servers sharing the database).",
		[]string{"status"}, nil)
	queueDesc = prometheus.NewDesc(namespace+"_job_queue_depth", "Pending jobs waiting for an agent.", nil, nil)
	agentDesc = prometheus.NewDesc(namespace+"_agents", "Registered agents by status (offline, idle, online, busy).",
		[]string{"status"}, nil)
)

type stateCollector struct {
	st      State
	timeout time.Duration
	log     *slog.Logger
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- queueDesc
	ch <- agentDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if jobs, err := c.st.JobsByStatus(ctx); err != nil {
		c.log.Warn("metrics: count jobs", "err", err)
	} else {
		for _, s := range []jobstate.Status{jobstate.Pending, jobstate.Running, jobstate.Success, jobstate.Failed,
			jobstate.Cancelled, jobstate.Timeout, jobstate.Skipped} {
			ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(jobs[jobstate.Name(s)]), jobstate.Name(s))
		}
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(jobs[jobstate.Name(jobstate.Pending)]))
	}
	if agents, err := c.st.AgentsByStatus(ctx); err != nil {
		c.log.Warn("metrics: count agents", "err", err)
	} else {
		for _, s := range agentStatuses {
			ch <- prometheus.MustNewConstMetric(agentDesc, prometheus.GaugeValue, float64(agents[s]), s)
		}
	}
}
