package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-arcade/arcade/server/store"
)

// BenchmarkAppendLogs stores 80-byte lines in batches of 2,000 on SQLite:
// the storage part of the log path, without gRPC.
func BenchmarkAppendLogs(b *testing.B) {
	s, err := store.Open(context.Background(), "sqlite://"+filepath.Join(b.TempDir(), "a.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	batch := make([]store.LogLine, 2000)
	content := strings.Repeat("x", 80)
	now := time.Now()
	b.SetBytes(int64(len(batch) * 80))
	next := int64(1)
	for b.Loop() {
		for i := range batch {
			batch[i] = store.LogLine{Line: next + int64(i), Time: now, Content: content}
		}
		if _, err := s.AppendLogs(context.Background(), "job", 1, batch); err != nil {
			b.Fatal(err)
		}
		next += int64(len(batch))
	}
	b.ReportMetric(float64(next-1)/b.Elapsed().Seconds(), "lines/s")
}
