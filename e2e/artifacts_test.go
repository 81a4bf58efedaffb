package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/client"
	"github.com/go-arcade/arcade/internal/pgtest"
	"github.com/go-arcade/arcade/server/store"
)

var (
	fsStoreOnce sync.Once
	fsStoreWasm string
	fsStoreErr  error
)

// fsStorePlugin builds the first-party fs-store plugin from source, once
// per test run.
func fsStorePlugin(t testing.TB) string {
	t.Helper()
	fsStoreOnce.Do(func() {
		out := filepath.Join(filepath.Dir(arcadeBin), "fs-store.wasm")
		if fsStoreErr = compileWasm("../plugins/fs-store", out); fsStoreErr != nil {
			return
		}
		fsStoreWasm = out
	})
	if fsStoreErr != nil {
		t.Fatal(fsStoreErr)
	}
	return fsStoreWasm
}

// storeCluster starts a server whose artifact store is fs-store keeping its
// objects in storeDir.
func storeCluster(t testing.TB, dsn, storeDir string, args ...string) *cluster {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "plugins.yaml")
	yaml := fmt.Sprintf(`plugins:
  - name: fs-store
    path: %s
    kind: storage
    config: {verify_loads: "false"}
    grants:
      allowed_paths:
        - {host: %s, guest: /store, mode: rw}
      timeout: 1m
      memory_limit_mib: 256
      max_instances: 2
`, fsStorePlugin(t), storeDir)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return newCluster(t, dsn, append([]string{"--plugins-config", cfg, "--artifact-store", "fs-store",
		"--artifact-sweep-interval", "200ms"}, args...)...)
}

// download fetches an artifact through DownloadArtifact.
func download(c *cluster, jobID, path string) ([]byte, *agentv1.Artifact, error) {
	stream, err := c.jobs.DownloadArtifact(context.Background(), &jobv1.DownloadArtifactRequest{JobId: jobID, Path: path})
	if err != nil {
		return nil, nil, err
	}
	var (
		buf bytes.Buffer
		art *agentv1.Artifact
	)
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return buf.Bytes(), art, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if msg.GetArtifact() != nil {
			art = msg.GetArtifact()
		}
		buf.Write(msg.GetData())
	}
}

// storedObjects lists the object files fs-store keeps under prefix.
func storedObjects(t testing.TB, storeDir, prefix string) []string {
	t.Helper()
	var out []string
	root := filepath.Join(storeDir, "objects")
	filepath.WalkDir(filepath.Join(root, prefix), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

func artifactsOf(t testing.TB, c *cluster, jobID string) []*agentv1.Artifact {
	t.Helper()
	resp, err := c.jobs.ListJobArtifacts(context.Background(), &jobv1.ListJobArtifactsRequest{JobId: jobID})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetArtifacts()
}

// seqBytes is what `seq 1 n` prints.
func seqBytes(n int) []byte {
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		fmt.Fprintln(&b, i)
	}
	return b.Bytes()
}

// TestArtifactsStoredListedDownloadedSwept: a successful job's two
// artifacts are uploaded by the agent, stored by fs-store, listed with
// size, sha256, creation and expiry, and come back identical through
// DownloadArtifact and `arcade artifact get`; a failed job uploads nothing;
// an expired artifact is swept (row and object) and cannot be downloaded.
func TestArtifactsStoredListedDownloadedSwept(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		storeDir := t.TempDir()
		c := storeCluster(t, dsn, storeDir)
		c.startAgent("builder", 2)
		big := seqBytes(1500000) // 10.4 MiB: three stored parts, many upload chunks and download messages
		report := []byte("all good\n")

		before := time.Now().Add(-time.Second)
		j := c.create(&jobv1.CreateJobRequest{Name: "build", Commands: []string{
			"mkdir -p dist && seq 1 1500000 > dist/app.bin", "printf 'all good\\n' > report.txt", "echo not kept > other.log"},
			Artifacts: &agentv1.ArtifactConfig{Paths: []string{"dist/*", "report.txt"}}})
		if got := c.waitStatus(j.GetId(), success, failed); got.GetStatus() != success {
			t.Fatalf("build: %v %s", got.GetStatus(), got.GetMessage())
		}
		after := time.Now().Add(time.Second)
		arts := artifactsOf(t, c, j.GetId())
		want := map[string][]byte{"dist/app.bin": big, "report.txt": report}
		if len(arts) != 2 {
			t.Fatalf("artifacts: %v, want dist/app.bin and report.txt", arts)
		}
		for _, a := range arts {
			content, ok := want[a.GetPath()]
			if !ok {
				t.Fatalf("unexpected artifact %s", a.GetPath())
			}
			if a.GetSizeBytes() != int64(len(content)) || a.GetSha256() != sha256Hex(string(content)) || !a.GetStored() {
				t.Errorf("%s: %d bytes, sha256 %s, stored %v; want %d bytes, sha256 %s, stored", a.GetPath(),
					a.GetSizeBytes(), a.GetSha256(), a.GetStored(), len(content), sha256Hex(string(content)))
			}
			created := a.GetCreatedAt().AsTime()
			if created.Before(before) || created.After(after) {
				t.Errorf("%s created at %v, not during the job (%v..%v)", a.GetPath(), created, before, after)
			}
			// No expire_in on the job: the server's default, 7 days.
			if got := a.GetExpiresAt().AsTime().Sub(created); got != 7*24*time.Hour {
				t.Errorf("%s expires %v after creation, want the 168h default", a.GetPath(), got)
			}
			data, da, err := download(c, j.GetId(), a.GetPath())
			if err != nil || !bytes.Equal(data, content) {
				t.Errorf("DownloadArtifact(%s): %d bytes, %v; want the %d bytes the job wrote", a.GetPath(), len(data), err, len(content))
			}
			if da.GetSha256() != a.GetSha256() {
				t.Errorf("download described %v", da)
			}
		}
		if objs := storedObjects(t, storeDir, "artifacts/"+j.GetId()); len(objs) != 4 {
			t.Errorf("objects in the store: %v, want three parts of dist/app.bin and one of report.txt", objs)
		}
		var uploaded []string
		for _, l := range c.logOf(j.GetId(), 0) {
			if l.GetStream() == agentv1.LogStream_LOG_STREAM_SYSTEM && strings.HasPrefix(l.GetContent(), "artifact ") {
				uploaded = append(uploaded, l.GetContent())
			}
		}
		if len(uploaded) != 2 || !strings.HasPrefix(uploaded[0], "artifact dist/app.bin uploaded (10.4 MiB, sha256 "+sha256Hex(string(big))) {
			t.Errorf("upload lines in the job log: %q", uploaded)
		}

		// The CLI: list, and get with its sha256 check.
		cli := c.cli
		if out, err := cli("artifact", "list", j.GetId()); err != nil || !strings.Contains(out, "dist/app.bin") || !strings.Contains(out, sha256Hex(string(report))) {
			t.Errorf("arcade artifact list: %v\n%s", err, out)
		}
		dest := filepath.Join(t.TempDir(), "app.bin")
		if out, err := cli("artifact", "get", j.GetId(), "dist/app.bin", "-o", dest); err != nil || !strings.Contains(out, "verified") {
			t.Errorf("arcade artifact get: %v\n%s", err, out)
		}
		if got, err := os.ReadFile(dest); err != nil || !bytes.Equal(got, big) {
			t.Errorf("arcade artifact get wrote %d bytes (%v), want the %d the job wrote", len(got), err, len(big))
		}
		if out, err := cli("artifact", "get", j.GetId(), "nope.txt", "-o", dest+".nope"); err == nil || !strings.Contains(out, "nope.txt") {
			t.Errorf("get of a missing artifact: %v\n%s", err, out)
		}

		// A failed job declares an artifact but uploads nothing.
		f := c.create(&jobv1.CreateJobRequest{Name: "fails", Commands: []string{"echo built > out.txt", "exit 3"},
			Artifacts: &agentv1.ArtifactConfig{Paths: []string{"out.txt"}}})
		if got := c.waitStatus(f.GetId(), success, failed); got.GetStatus() != failed {
			t.Fatalf("failing job: %v", got.GetStatus())
		}
		if arts := artifactsOf(t, c, f.GetId()); len(arts) != 0 {
			t.Errorf("failed job's artifacts: %v, want none", arts)
		}
		if objs := storedObjects(t, storeDir, "artifacts/"+f.GetId()); len(objs) != 0 {
			t.Errorf("failed job's objects: %v, want none", objs)
		}
		if _, _, err := download(c, f.GetId(), "out.txt"); status.Code(err) != codes.NotFound {
			t.Errorf("download from a failed job: %v, want NotFound", err)
		}

		// A short expiry: the sweep removes row and object.
		e := c.create(&jobv1.CreateJobRequest{Name: "short-lived", Commands: []string{"echo soon gone > tmp.txt"},
			Artifacts: &agentv1.ArtifactConfig{Paths: []string{"tmp.txt"}, ExpireIn: durationpb.New(time.Second)}})
		if got := c.waitStatus(e.GetId(), success, failed); got.GetStatus() != success {
			t.Fatalf("short-lived: %v", got.GetStatus())
		}
		c.waitFor("the expired artifact to be swept", func() bool { return len(artifactsOf(t, c, e.GetId())) == 0 })
		if objs := storedObjects(t, storeDir, "artifacts/"+e.GetId()); len(objs) != 0 {
			t.Errorf("swept artifact's objects: %v, want none", objs)
		}
		if _, _, err := download(c, e.GetId(), "tmp.txt"); status.Code(err) != codes.NotFound {
			t.Errorf("download after the sweep: %v, want NotFound", err)
		}
		if n := len(c.server.grepLog("expired artifact removed")); n != 1 {
			t.Errorf("%d removals logged, want 1", n)
		}
		// The long-lived ones are still there.
		if got := artifactsOf(t, c, j.GetId()); len(got) != 2 {
			t.Errorf("artifacts not yet expired: %v", got)
		}
	})
}

// fakeAgent registers an agent by hand and leases the next job to it.
func fakeAgent(t testing.TB, c *cluster, name string) (agentv1.AgentServiceClient, string) {
	t.Helper()
	ctx := context.Background()
	reg, err := client.Dial(c.addr, client.Static(agentToken))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	r, err := agentv1.NewAgentServiceClient(reg).Register(ctx, &agentv1.RegisterRequest{Name: name, Labels: map[string]string{"fake": name}})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := client.Dial(c.addr, client.Static(r.GetAgentToken()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return agentv1.NewAgentServiceClient(conn), r.GetAgentId()
}

// upload sends an artifact with the given header in chunks.
func upload(agents agentv1.AgentServiceClient, h *agentv1.ArtifactHeader, data []byte) (*agentv1.Artifact, error) {
	stream, err := agents.UploadArtifact(context.Background())
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&agentv1.UploadArtifactRequest{Part: &agentv1.UploadArtifactRequest_Header{Header: h}}); err != nil {
		_, err = stream.CloseAndRecv()
		return nil, err
	}
	for len(data) > 0 {
		n := min(len(data), 256<<10)
		if err := stream.Send(&agentv1.UploadArtifactRequest{Part: &agentv1.UploadArtifactRequest_Data{Data: data[:n]}}); err != nil {
			_, err = stream.CloseAndRecv()
			return nil, err
		}
		data = data[n:]
	}
	resp, err := stream.CloseAndRecv()
	return resp.GetArtifact(), err
}

// TestArtifactUploadRefused: an upload whose bytes do not match its sha256
// or size, from an agent that does not run the job, or for an attempt that
// is not running is refused, and nothing is stored.
func TestArtifactUploadRefused(t *testing.T) {
	storeDir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "server.yaml")
	if err := os.WriteFile(cfg, []byte("api_tokens:\n  - {token: reader-token, scope: read}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := storeCluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"), storeDir, "--lease-ttl", "10m", "--artifact-max-bytes", "1000000",
		"--artifact-sweep-interval", "1h", "--config", cfg)
	ctx := context.Background()
	agents, id := fakeAgent(t, c, "by-hand")
	other, _ := fakeAgent(t, c, "other")
	j := c.create(&jobv1.CreateJobRequest{Name: "by hand", Commands: []string{"true"}, Selector: "fake=by-hand"})
	if f, err := agents.FetchJob(ctx, &agentv1.FetchJobRequest{AgentId: id, Wait: durationpb.New(5 * time.Second)}); err != nil || f.GetJob().GetId() != j.GetId() {
		t.Fatalf("lease: %v %v", f, err)
	}
	data := []byte("the real bytes\n")
	header := func() *agentv1.ArtifactHeader {
		return &agentv1.ArtifactHeader{JobId: j.GetId(), Attempt: 1, Path: "dist/app.txt", SizeBytes: int64(len(data)), Sha256: sha256Hex(string(data))}
	}
	cases := []struct {
		name   string
		agents agentv1.AgentServiceClient
		edit   func(h *agentv1.ArtifactHeader)
		body   []byte
		code   codes.Code
		naming string
	}{
		{"tampered bytes", agents, func(h *agentv1.ArtifactHeader) {}, []byte("the fake bytes\n"), codes.InvalidArgument, "sha256"},
		{"wrong sha256", agents, func(h *agentv1.ArtifactHeader) { h.Sha256 = sha256Hex("something else") }, data, codes.InvalidArgument, "sha256"},
		{"short", agents, func(h *agentv1.ArtifactHeader) { h.SizeBytes++ }, data, codes.InvalidArgument, "size_bytes"},
		{"too long", agents, func(h *agentv1.ArtifactHeader) { h.SizeBytes-- }, data, codes.InvalidArgument, "size_bytes"},
		{"over the limit", agents, func(h *agentv1.ArtifactHeader) { h.SizeBytes = 2000000 }, data, codes.InvalidArgument, "limit"},
		{"escaping path", agents, func(h *agentv1.ArtifactHeader) { h.Path = "../etc/passwd" }, data, codes.InvalidArgument, "path"},
		{"another agent", other, func(h *agentv1.ArtifactHeader) {}, data, codes.PermissionDenied, "not run by this agent"},
		{"another attempt", agents, func(h *agentv1.ArtifactHeader) { h.Attempt = 2 }, data, codes.FailedPrecondition, "attempt 2"},
	}
	for _, tc := range cases {
		h := header()
		tc.edit(h)
		if _, err := upload(tc.agents, h, tc.body); status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.naming) {
			t.Errorf("%s: %v, want %s naming %q", tc.name, err, tc.code, tc.naming)
		}
	}
	if objs := storedObjects(t, storeDir, ""); len(objs) != 0 {
		t.Errorf("refused uploads left objects: %v", objs)
	}
	if arts := artifactsOf(t, c, j.GetId()); len(arts) != 0 {
		t.Errorf("refused uploads left artifacts: %v", arts)
	}
	// The real one is taken.
	art, err := upload(agents, header(), data)
	if err != nil || !art.GetStored() || art.GetSha256() != sha256Hex(string(data)) {
		t.Fatalf("upload: %v %v", art, err)
	}
	if got, _, err := download(c, j.GetId(), "dist/app.txt"); err != nil || !bytes.Equal(got, data) {
		t.Errorf("download: %q %v", got, err)
	}
	// A read-scope token may download.
	rconn, err := client.Dial(c.addr, client.Static("reader-token"))
	if err != nil {
		t.Fatal(err)
	}
	defer rconn.Close()
	reader := &cluster{jobs: jobv1.NewJobServiceClient(rconn)}
	if got, _, err := download(reader, j.GetId(), "dist/app.txt"); err != nil || !bytes.Equal(got, data) {
		t.Errorf("download with a read token: %q %v", got, err)
	}
	// Once the job has ended, its attempt takes no more uploads.
	if _, err := agents.ReportJobStatus(ctx, &agentv1.ReportJobStatusRequest{AgentId: id, JobId: j.GetId(), Attempt: 1, Status: success}); err != nil {
		t.Fatal(err)
	}
	if _, err := upload(agents, header(), data); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("upload after the job ended: %v, want FailedPrecondition", err)
	}
	// Deleting the job removes its stored objects.
	if _, err := c.jobs.DeleteJob(ctx, &jobv1.DeleteJobRequest{JobId: j.GetId()}); err != nil {
		t.Fatal(err)
	}
	if objs := storedObjects(t, storeDir, ""); len(objs) != 0 {
		t.Errorf("objects of a deleted job: %v", objs)
	}

	// Expired but not swept yet (this server sweeps hourly): listed, but a
	// download says it expired.
	c.startAgent("real", 1, "real=yes")
	e := c.create(&jobv1.CreateJobRequest{Name: "brief", Commands: []string{"echo brief > b.txt"}, Selector: "real",
		Artifacts: &agentv1.ArtifactConfig{Paths: []string{"b.txt"}, ExpireIn: durationpb.New(time.Second)}})
	if got := c.waitStatus(e.GetId(), success, failed); got.GetStatus() != success {
		t.Fatalf("brief: %v", got.GetStatus())
	}
	c.waitFor("the artifact to expire", func() bool {
		_, _, err := download(c, e.GetId(), "b.txt")
		return status.Code(err) == codes.NotFound && strings.Contains(err.Error(), "expired")
	})
	if arts := artifactsOf(t, c, e.GetId()); len(arts) != 1 || !arts[0].GetStored() {
		t.Errorf("expired, unswept artifact: %v", arts)
	}

	// Deleting a pipeline removes the objects of its jobs.
	c.createPipeline(`name: keeps
stages:
  - name: build
    jobs:
      - name: pack
        selector: real
        commands: ["echo packed > pack.txt"]
        artifacts: {paths: [pack.txt]}
`)
	r := c.waitRun(c.trigger("keeps", nil).GetId())
	if r.GetStatus() != success {
		t.Fatalf("pipeline run: %v", r.GetStatus())
	}
	pack := jobsByName(r)["pack"]
	if objs := storedObjects(t, storeDir, "artifacts/"+pack.GetId()); len(objs) != 1 {
		t.Fatalf("pipeline job's objects: %v", objs)
	}
	if _, err := c.jobs.DeletePipeline(ctx, &jobv1.DeletePipelineRequest{PipelineId: "keeps"}); err != nil {
		t.Fatal(err)
	}
	if objs := storedObjects(t, storeDir, "artifacts/"+pack.GetId()); len(objs) != 0 {
		t.Errorf("objects of a deleted pipeline's job: %v", objs)
	}
}

// TestArtifactSweepAcrossReplicas: two servers on one PostgreSQL, one
// artifact store; expired artifacts are removed once, without errors on
// either replica; when one replica stops, the other sweeps.
func TestArtifactSweepAcrossReplicas(t *testing.T) {
	dsn := pgtest.Start(t)
	storeDir := t.TempDir()
	a := storeCluster(t, dsn, storeDir)
	b := storeCluster(t, dsn, storeDir)
	b.startAgent("on-b", 3)
	var ids []string
	for i := range 3 {
		j := b.create(&jobv1.CreateJobRequest{Name: fmt.Sprint("job ", i), Commands: []string{"echo one > one.txt", "echo two > two.txt"},
			Artifacts: &agentv1.ArtifactConfig{Paths: []string{"*.txt"}, ExpireIn: durationpb.New(2 * time.Second)}})
		ids = append(ids, j.GetId())
	}
	for _, id := range ids {
		if got := b.waitStatus(id, success, failed); got.GetStatus() != success {
			t.Fatalf("job %s: %v", id, got.GetStatus())
		}
		if n := len(artifactsOf(t, b, id)); n != 2 {
			t.Fatalf("job %s has %d artifacts before expiry, want 2", id, n)
		}
	}
	for _, id := range ids {
		b.waitFor("artifacts of "+id+" to be swept", func() bool { return len(artifactsOf(t, a, id)) == 0 })
	}
	if objs := storedObjects(t, storeDir, "artifacts"); len(objs) != 0 {
		t.Errorf("objects left after the sweep: %v", objs)
	}
	removed := len(a.server.grepLog("expired artifact removed")) + len(b.server.grepLog("expired artifact removed"))
	if removed != 6 {
		t.Errorf("%d removals logged across the replicas, want 6 (each artifact once)", removed)
	}
	for _, s := range []*proc{a.server, b.server} {
		if errs := s.grepLog("periodic work failed; retrying next round"); len(errs) != 0 {
			t.Errorf("sweep errors: %v", errs)
		}
	}

	// A stops (it started first, so it most likely held the lease): B sweeps.
	a.server.stop(syscall.SIGTERM)
	j := b.create(&jobv1.CreateJobRequest{Name: "after a", Commands: []string{"echo late > late.txt"},
		Artifacts: &agentv1.ArtifactConfig{Paths: []string{"*.txt"}, ExpireIn: durationpb.New(time.Second)}})
	if got := b.waitStatus(j.GetId(), success, failed); got.GetStatus() != success {
		t.Fatalf("job after a stopped: %v", got.GetStatus())
	}
	b.waitFor("replica B to sweep", func() bool { return len(artifactsOf(t, b, j.GetId())) == 0 })
	held := false
	for _, r := range b.server.grepLog("lease acquired; this replica runs the work") {
		held = held || r["lease"] == "artifact-sweep"
	}
	if !held {
		t.Error("replica B never took the sweep lease")
	}
}

// TestLogArchive: the log of a finished job moves to the artifact store (its
// rows leave the database) and GetJobLog and StreamJobLog still return
// every line as it was; retried, the job's new attempt is logged in the
// database, then archived beside the first.
func TestLogArchive(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		storeDir := t.TempDir()
		c := storeCluster(t, dsn, storeDir, "--log-archive-after", "1ms")
		c.startAgent("archivist", 1)
		const n = 3000
		j := c.create(&jobv1.CreateJobRequest{Name: "chatty", Commands: []string{
			fmt.Sprintf(`i=1; while [ $i -le %d ]; do if [ $((i %% 2)) -eq 0 ]; then echo "line $i" >&2; else echo "line $i"; fi; i=$((i+1)); done`, n),
			`test "$ARCADE_JOB_ATTEMPT" = 2`}})
		// Follow it live: this is the log as the job wrote it.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		streamed := streamLog(t, c, ctx, j.GetId(), true)
		c.waitFor("the log to be archived", func() bool { return c.get(j.GetId()).GetLogArchived() })
		if got := c.get(j.GetId()); got.GetStatus() != failed {
			t.Fatalf("job: %v, want FAILED at attempt 1", got.GetStatus())
		}
		st, err := store.Open(context.Background(), dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if rows, err := st.CountLogChunks(context.Background(), j.GetId()); err != nil || rows != 0 {
			t.Errorf("log rows left in the database: %d, %v", rows, err)
		}
		if objs := storedObjects(t, storeDir, "logs/"+j.GetId()); len(objs) != 1 || objs[0] != "logs/"+j.GetId()+"/1.pack" {
			t.Errorf("archive objects: %v", objs)
		}
		if len(streamed) < n+1 {
			t.Fatalf("followed %d lines, want at least %d", len(streamed), n+1)
		}
		check := func(what string, got []*agentv1.LogChunk) {
			t.Helper()
			if len(got) != len(streamed) {
				t.Fatalf("%s: %d lines, want %d", what, len(got), len(streamed))
			}
			for i := range got {
				g, w := got[i], streamed[i]
				if g.GetLineNumber() != w.GetLineNumber() || g.GetContent() != w.GetContent() || g.GetStream() != w.GetStream() ||
					g.GetLevel() != w.GetLevel() || !g.GetTimestamp().AsTime().Equal(w.GetTimestamp().AsTime()) {
					t.Fatalf("%s: line %d is %v, was %v", what, i+1, g, w)
				}
			}
		}
		check("GetJobLog from the archive", c.logOf(j.GetId(), 0))
		check("StreamJobLog from the archive", streamLog(t, c, ctx, j.GetId(), false))
		// A page from the middle.
		resp, err := c.jobs.GetJobLog(ctx, &jobv1.GetJobLogRequest{JobId: j.GetId(), FromLine: 1500, Limit: 10})
		if err != nil || len(resp.GetLines()) != 10 || resp.GetLines()[0].GetLineNumber() != 1500 || resp.GetNextLine() != 1510 {
			t.Errorf("a page of the archive: %v, %v", resp, err)
		}

		// Retried: attempt 2 runs and is archived in turn; attempt 1 stays.
		if _, err := c.jobs.RetryJob(ctx, &jobv1.RetryJobRequest{JobId: j.GetId()}); err != nil {
			t.Fatal(err)
		}
		if got := c.get(j.GetId()); got.GetLogArchived() {
			t.Error("a retried job's new attempt reported as archived")
		}
		c.waitFor("attempt 2 to succeed and be archived", func() bool {
			got := c.get(j.GetId())
			return got.GetStatus() == success && got.GetLogArchived()
		})
		check("attempt 1 after the retry", c.logOf(j.GetId(), 1))
		second := c.logOf(j.GetId(), 2)
		var out int
		for _, l := range second {
			if l.GetStream() != agentv1.LogStream_LOG_STREAM_SYSTEM {
				out++
			}
		}
		if out != n {
			t.Errorf("attempt 2: %d output lines, want %d", out, n)
		}
		if objs := storedObjects(t, storeDir, "logs/"+j.GetId()); len(objs) != 2 {
			t.Errorf("archive objects after the retry: %v, want 1.pack and 2.pack", objs)
		}
		if rows, err := st.CountLogChunks(context.Background(), j.GetId()); err != nil || rows != 0 {
			t.Errorf("log rows left after the second archive: %d, %v", rows, err)
		}
	})
}

// streamLog reads a job's log through StreamJobLog.
func streamLog(t testing.TB, c *cluster, ctx context.Context, jobID string, follow bool) []*agentv1.LogChunk {
	t.Helper()
	stream, err := jobv1.NewStreamServiceClient(c.conn).StreamJobLog(ctx, &jobv1.StreamJobLogRequest{JobId: jobID, Follow: follow})
	if err != nil {
		t.Fatal(err)
	}
	var out []*agentv1.LogChunk
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("StreamJobLog: %v", err)
		}
		out = append(out, resp.GetLines()...)
	}
}
