package e2e

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/internal/tmpfs"
)

// TestFullDisk runs a server whose SQLite database lives on a small tmpfs
// and fills it: writes are refused with ResourceExhausted and a plain
// message (not Internal with the driver's), /readyz turns 503 and gRPC health NOT_SERVING while reads still work;
// once there is room again the server is ready and writes.
func TestFullDisk(t *testing.T) {
	dir := tmpfs.Mount(t, 8<<20)
	c := newClusterWithMetrics(t, "sqlite://"+filepath.Join(dir, "arcade.db"))
	ctx := context.Background()
	c.create(&jobv1.CreateJobRequest{Name: "before", Commands: []string{"true"}})
	free := tmpfs.Fill(t, dir)
	var err error
	for i := 0; i < 2000 && err == nil; i++ {
		_, err = c.jobs.CreateJob(ctx, &jobv1.CreateJobRequest{Commands: []string{strings.Repeat("x", 60<<10)}})
	}
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "storage is full") || strings.Contains(st.Message(), "(13)") {
		t.Errorf("a write on a full disk: %v", err)
	}
	var body string
	c.waitFor("/readyz to fail", func() bool {
		var code int
		code, body = c.httpStatus("/readyz")
		return code == http.StatusServiceUnavailable
	})
	if !strings.Contains(body, "store") || !strings.Contains(body, "full") {
		t.Errorf("/readyz on a full disk says %q", body)
	}
	c.waitFor("gRPC health NOT_SERVING", func() bool { return c.grpcHealth() == healthpb.HealthCheckResponse_NOT_SERVING })
	if _, err := c.jobs.ListJobs(ctx, &jobv1.ListJobsRequest{PageSize: 1}); err != nil {
		t.Errorf("a read on a full disk: %v", err)
	}

	free()
	c.waitFor("/readyz to pass again", func() bool {
		code, _ := c.httpStatus("/readyz")
		return code == http.StatusOK
	})
	c.waitFor("gRPC health SERVING again", func() bool { return c.grpcHealth() == healthpb.HealthCheckResponse_SERVING })
	c.create(&jobv1.CreateJobRequest{Name: "after", Commands: []string{"true"}})
}
