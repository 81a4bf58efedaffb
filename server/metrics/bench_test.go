package metrics

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/logpack"
	"github.com/go-arcade/arcade/server/store"
)

// BenchmarkLogPath stores packed batches of 2,000 80-byte lines on SQLite,
// as the server does with an agent's log, without and with the metrics:
// the query hook timing every query and the count of lines ingested.
func BenchmarkLogPath(b *testing.B) {
	for _, instrumented := range []bool{false, true} {
		name := "plain"
		if instrumented {
			name = "metrics"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			s, err := store.Open(ctx, "sqlite://"+filepath.Join(b.TempDir(), "a.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var m *Metrics
			if instrumented {
				m = New(prometheus.NewRegistry())
				s.AddQueryHook(m.QueryHook())
			}
			if err := s.Migrate(ctx); err != nil {
				b.Fatal(err)
			}
			batch := make([]logpack.Line, 2000)
			content := strings.Repeat("x", 80)
			now := time.Now()
			b.SetBytes(int64(len(batch) * 80))
			next := int64(1)
			for b.Loop() {
				for i := range batch {
					batch[i] = logpack.Line{Line: next + int64(i), Time: now, Content: content}
				}
				packed := logpack.Encode(batch)
				_, count, err := s.AppendPacked(ctx, "job", 1, next, packed)
				if err != nil {
					b.Fatal(err)
				}
				m.LogIngested(count, len(packed))
				next += int64(len(batch))
			}
			b.ReportMetric(float64(next-1)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// BenchmarkHooks measures the hooks alone.
func BenchmarkHooks(b *testing.B) {
	m := New(prometheus.NewRegistry())
	b.Run("LogIngested", func(b *testing.B) {
		for b.Loop() {
			m.LogIngested(2000, 40000)
		}
	})
	b.Run("JobLeased+Started", func(b *testing.B) {
		j := &store.Job{ID: "j", Attempt: 1, CreatedAt: time.Now()}
		for b.Loop() {
			m.JobLeased(j)
			m.JobEvent(j, jobv1.EventType_EVENT_TYPE_JOB_STARTED)
		}
	})
}
