// Package metrics keeps the server's Prometheus metrics: job, queue, agent,
// log, stream, plugin and store figures, registered on a registry the caller
// passes in (never the global one), so tests and several servers in one
// process each have their own.
//
// Every method is safe on a nil *Metrics and then does nothing, so code that
// runs without metrics (unit tests) needs no checks.
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/server/store"
)

const namespace = "arcade"

// Stream kinds, the values of the stream label of arcade_stream_subscribers.
var streamKinds = map[string]string{
	"StreamJobLog":         "job_log",
	"StreamJobStatus":      "job_status",
	"StreamPipelineStatus": "pipeline_status",
	"StreamEvents":         "events",
	"StreamAgentStatus":    "agent_status",
	"AgentChannel":         "agent_channel",
}

// Metrics holds the server's collectors.
type Metrics struct {
	jobsCreated     prometheus.Counter
	jobsFinished    *prometheus.CounterVec
	jobRetries      prometheus.Counter
	queueWait       prometheus.Histogram
	dispatchLatency prometheus.Histogram
	logLines        prometheus.Counter
	logBytes        prometheus.Counter
	subscribers     *prometheus.GaugeVec
	pluginCalls     *prometheus.CounterVec
	pluginErrors    *prometheus.CounterVec
	pluginDuration  *prometheus.HistogramVec
	pluginEvents    *prometheus.CounterVec
	pluginReloads   *prometheus.CounterVec
	storeQueries    *prometheus.HistogramVec
	storeErrors     *prometheus.CounterVec

	// leased remembers when this replica handed each job attempt to an
	// agent, until the agent reports it running (dispatch latency).
	mu     sync.Mutex
	leased map[attemptKey]time.Time
	now    func() time.Time
}

type attemptKey struct {
	job     string
	attempt int32
}

// maxLeased bounds the lease times kept: attempts whose running report never
// comes (the agent died) are forgotten when their job ends, and all at once
// should that many ever pile up.
const maxLeased = 100_000

// latencyBuckets suit waits from milliseconds to many minutes.
var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// New creates the metrics and registers them on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		jobsCreated: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace,
			Name: "jobs_created_total", Help: "Jobs created (by the API or by pipeline runs) on this server."}),
		jobsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "jobs_finished_total", Help: "Jobs that reached a final status on this server, by status."}, []string{"status"}),
		jobRetries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace,
			Name: "job_retries_total", Help: "Job attempts queued again, automatically or by request."}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace,
			Name: "job_queue_wait_seconds", Buckets: latencyBuckets,
			Help: "Time a job waited pending, from its creation to being handed to an agent (first attempts)."}),
		dispatchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace,
			Name: "job_dispatch_latency_seconds", Buckets: latencyBuckets,
			Help: "Time from a job attempt being handed to an agent to the agent's report that it runs."}),
		logLines: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace,
			Name: "log_lines_ingested_total", Help: "Log lines received from agents and stored."}),
		logBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace,
			Name: "log_bytes_ingested_total", Help: "Bytes of log received from agents and stored, in packed form."}),
		subscribers: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace,
			Name: "stream_subscribers", Help: "Open server streams, by kind."}, []string{"stream"}),
		pluginCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "plugin_calls_total", Help: "Plugin calls, by plugin and outcome (ok, error)."}, []string{"plugin", "outcome"}),
		pluginErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "plugin_call_errors_total", Help: "Failed plugin calls, by plugin and reason."}, []string{"plugin", "reason"}),
		pluginDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace,
			Name: "plugin_call_duration_seconds", Help: "Duration of plugin calls, by plugin.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"plugin"}),
		pluginEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "plugin_events_total", Help: "Plugin life events (loaded, reloaded, unloaded, failed, call_failed), by plugin."}, []string{"plugin", "event"}),
		pluginReloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "plugin_reloads_total", Help: "Successful plugin reloads, by plugin."}, []string{"plugin"}),
		storeQueries: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace,
			Name: "store_query_duration_seconds", Help: "Duration of database queries, by operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"operation"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "store_query_errors_total", Help: "Database queries that failed, by operation."}, []string{"operation"}),
		leased: make(map[attemptKey]time.Time),
		now:    time.Now,
	}
	reg.MustRegister(m.jobsCreated, m.jobsFinished, m.jobRetries, m.queueWait, m.dispatchLatency,
		m.logLines, m.logBytes, m.subscribers, m.pluginCalls, m.pluginErrors, m.pluginDuration,
		m.pluginEvents, m.pluginReloads, m.storeQueries, m.storeErrors)
	// Show every known label value from the start, so that rates work
	// from the first scrape.
	for _, s := range []jobstate.Status{jobstate.Success, jobstate.Failed, jobstate.Cancelled, jobstate.Timeout} {
		m.jobsFinished.WithLabelValues(jobstate.Name(s))
	}
	for _, kind := range streamKinds {
		m.subscribers.WithLabelValues(kind)
	}
	return m
}

// JobEvent counts a job change this server made, as published on its event
// bus: creations, retries, final statuses; a start observes the dispatch
// latency.
func (m *Metrics) JobEvent(j *store.Job, typ jobv1.EventType) {
	if m == nil || j == nil {
		return
	}
	switch typ {
	case jobv1.EventType_EVENT_TYPE_JOB_CREATED:
		if j.Attempt <= 1 {
			m.jobsCreated.Inc()
		} else {
			m.jobRetries.Inc() // a retry by request
		}
	case jobv1.EventType_EVENT_TYPE_JOB_STARTED:
		k := attemptKey{j.ID, j.Attempt}
		m.mu.Lock()
		at, ok := m.leased[k]
		delete(m.leased, k)
		m.mu.Unlock()
		if ok {
			m.dispatchLatency.Observe(m.now().Sub(at).Seconds())
		}
	case jobv1.EventType_EVENT_TYPE_JOB_FINISHED, jobv1.EventType_EVENT_TYPE_JOB_CANCELLED:
		m.forget(j.ID)
		st, err := jobstate.Parse(j.Status)
		switch {
		case err != nil:
		case st == jobstate.Pending:
			m.jobRetries.Inc() // the attempt ended and the job went back to the queue
		case jobstate.Terminal(st):
			m.jobsFinished.WithLabelValues(j.Status).Inc()
		}
	}
}

// forget drops the lease times of a job's attempts.
func (m *Metrics) forget(jobID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.leased {
		if k.job == jobID {
			delete(m.leased, k)
		}
	}
}

// JobLeased records that a job attempt was handed to an agent: it observes
// the queue wait of a first attempt and starts the dispatch latency clock.
func (m *Metrics) JobLeased(j *store.Job) {
	if m == nil || j == nil {
		return
	}
	now := m.now()
	if j.Attempt <= 1 && !j.CreatedAt.IsZero() {
		m.queueWait.Observe(max(now.Sub(j.CreatedAt).Seconds(), 0))
	}
	m.mu.Lock()
	if len(m.leased) >= maxLeased {
		clear(m.leased)
	}
	m.leased[attemptKey{j.ID, j.Attempt}] = now
	m.mu.Unlock()
}

// LogIngested counts a stored batch of log lines.
func (m *Metrics) LogIngested(lines, bytes int) {
	if m == nil {
		return
	}
	m.logLines.Add(float64(lines))
	m.logBytes.Add(float64(bytes))
}
