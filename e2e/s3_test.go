package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/go-arcade/arcade/agent/transfer"
	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/core/jobstate"
	"github.com/go-arcade/arcade/internal/pgtest"
	"github.com/go-arcade/arcade/internal/s3test"
	"github.com/go-arcade/arcade/server/store"
)

var (
	s3StoreOnce sync.Once
	s3StoreWasm string
	s3StoreErr  error
)

// s3StorePlugin builds the first-party s3-store plugin from source, once
// per test run.
func s3StorePlugin(t testing.TB) string {
	t.Helper()
	s3StoreOnce.Do(func() {
		out := filepath.Join(filepath.Dir(arcadeBin), "s3-store.wasm")
		if s3StoreErr = compileWasm("../plugins/s3-store", out); s3StoreErr != nil {
			return
		}
		s3StoreWasm = out
	})
	if s3StoreErr != nil {
		t.Fatal(s3StoreErr)
	}
	return s3StoreWasm
}

// s3Cluster starts a server whose artifact store is s3-store over bucket,
// with its own plugins.yaml, data folder and copy of the keyring (no shared
// disk), granted only the S3 server's host. The plugin takes the access key
// from the stored secret S3_ACCESS_KEY_ID and the secret key from the one
// named secretName; with setSecrets the server stores both first (once per
// database), holding secretValue. It returns once s3-store is loaded.
func s3Cluster(t testing.TB, dsn, ring string, srv *s3test.Server, bucket, secretName string, setSecrets bool, secretValue string, args ...string) *cluster {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "plugins.yaml")
	yaml := fmt.Sprintf(`plugins:
  - name: s3-store
    path: %s
    kind: storage
    config: {endpoint: %q, bucket: %s, prefix: ci/, addressing: path}
    secrets: {access_key_id: S3_ACCESS_KEY_ID, secret_access_key: %s}
    grants:
      allowed_hosts: [127.0.0.1]
      timeout: 1m
      memory_limit_mib: 256
      max_instances: 4
`, s3StorePlugin(t), srv.Endpoint, bucket, secretName)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	keyring := filepath.Join(dir, "secret.keyring")
	if err := os.WriteFile(keyring, []byte(ring), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, dsn, append([]string{"--plugins-config", cfg, "--artifact-store", "s3-store",
		"--artifact-sweep-interval", "200ms", "--secret-keyring", keyring}, args...)...)
	if setSecrets {
		for name, value := range map[string]string{"S3_ACCESS_KEY_ID": srv.AccessKey, secretName: secretValue} {
			if out, err := c.cliIn(value, "secret", "set", name); err != nil {
				t.Fatalf("arcade secret set %s: %v\n%s", name, err, out)
			}
		}
	}
	plugins := pluginv1.NewPluginServiceClient(c.conn)
	c.waitFor("s3-store to load with its secrets", func() bool {
		p, err := plugins.GetPlugin(context.Background(), &pluginv1.GetPluginRequest{Name: "s3-store"})
		return err == nil && p.GetPlugin().GetState() == pluginv1.PluginState_PLUGIN_STATE_LOADED
	})
	return c
}

// s3Ring is a keyring for the servers of one test: one key, a copy each.
func s3Ring() string { return "# s3 tests\n" + base64Key() + "\n" }

func sha256Of(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fetchURL gets a URL without credentials.
func fetchURL(t testing.TB, url string) (int, []byte, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

// filesUnder lists the regular files under dir whose path contains part.
func filesUnder(dir, part string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.Contains(p, part) {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestS3ReplicasWithoutSharedDisk: three replicas with separate data
// folders on one PostgreSQL, artifacts and archived logs in S3. An artifact
// uploaded by an agent of replica A (straight to the store) is listed and
// downloaded, its sha256 checked, through B (streamed), C (a presigned URL,
// the HTTP redirect and the CLI) and C's dashboard; a log archived by A is
// read through B and C; the expiry sweep removes each object once; no
// replica holds artifact bytes on its disk; the credentials appear in no log.
func TestS3ReplicasWithoutSharedDisk(t *testing.T) {
	dsn := pgtest.Start(t)
	srv := s3test.Start(t)
	srv.CreateBucket(t, "arcade")
	ring := s3Ring()
	httpC := freeAddr(t)
	a := s3Cluster(t, dsn, ring, srv, "arcade", "S3_SECRET_ACCESS_KEY", true, srv.SecretKey, "--log-archive-after", "1ms")
	b := s3Cluster(t, dsn, ring, srv, "arcade", "S3_SECRET_ACCESS_KEY", false, "")
	c := s3Cluster(t, dsn, ring, srv, "arcade", "S3_SECRET_ACCESS_KEY", false, "", "--http-listen", httpC)
	ready := time.Now() // A's periodic work failed until its secrets were set
	a.startAgent("on-a", 2)

	app := seqBytes(600000) // 4.4 MiB
	report := []byte("all good\n")
	j := a.create(&jobv1.CreateJobRequest{Name: "build", Commands: []string{
		"mkdir -p dist && seq 1 600000 > dist/app.bin", "printf 'all good\\n' > report.txt"},
		Artifacts: &agentv1.ArtifactConfig{Paths: []string{"dist/*", "report.txt"}}})
	if got := a.waitStatus(j.GetId(), success, failed); got.GetStatus() != success {
		t.Fatalf("build: %v %s", got.GetStatus(), got.GetMessage())
	}
	want := map[string][]byte{"dist/app.bin": app, "report.txt": report}
	for name, r := range map[string]*cluster{"B": b, "C": c} {
		arts := artifactsOf(t, r, j.GetId())
		if len(arts) != 2 {
			t.Fatalf("replica %s lists %v", name, arts)
		}
		for _, art := range arts {
			if content := want[art.GetPath()]; !art.GetStored() || art.GetSha256() != sha256Of(content) || art.GetSizeBytes() != int64(len(content)) {
				t.Errorf("replica %s lists %v", name, art)
			}
		}
	}
	// B streams the bytes (from S3, through its plugin); C hands out a URL.
	if got, _, err := download(b, j.GetId(), "dist/app.bin"); err != nil || sha256Of(got) != sha256Of(app) {
		t.Errorf("download through B: %d bytes, %v", len(got), err)
	}
	link, err := c.jobs.GetArtifactURL(context.Background(), &jobv1.GetArtifactURLRequest{JobId: j.GetId(), Path: "dist/app.bin"})
	if err != nil || !strings.HasPrefix(link.GetUrl(), srv.Endpoint+"/arcade/ci/artifacts/") {
		t.Fatalf("GetArtifactURL through C: %v %v", link, err)
	}
	if code, got, h := fetchURL(t, link.GetUrl()); code != 200 || sha256Of(got) != sha256Of(app) || !strings.Contains(h.Get("Content-Disposition"), "app.bin") {
		t.Errorf("presigned GET: %d, %d bytes, %v", code, len(got), h)
	}
	dest := filepath.Join(t.TempDir(), "app.bin")
	if out, err := c.cli("artifact", "get", j.GetId(), "dist/app.bin", "-o", dest); err != nil || !strings.Contains(out, "verified; straight from the store") {
		t.Errorf("arcade artifact get through C: %v\n%s", err, out)
	} else if got, _ := os.ReadFile(dest); !bytes.Equal(got, app) {
		t.Errorf("arcade artifact get wrote %d bytes", len(got))
	}
	// The HTTP face redirects; the token does not follow (the URL is its own
	// credential).
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", "http://"+httpC+"/artifacts/"+j.GetId()+"/report.txt", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, srv.Endpoint) {
		t.Fatalf("GET /artifacts: %d to %q, want a redirect to the store", resp.StatusCode, loc)
	}
	if code, got, _ := fetchURL(t, loc); code != 200 || !bytes.Equal(got, report) {
		t.Errorf("the redirect's target: %d %q", code, got)
	}

	// The dashboard of C downloads through the redirect.
	dashboardDownload(t, "http://"+httpC, srv, j.GetId(), "dist/app.bin", app)

	// Bytes live in the bucket, not on any replica's disk.
	keys := srv.Keys(t, "arcade", "ci/artifacts/"+j.GetId()+"/")
	if len(keys) != 2 {
		t.Errorf("objects in the bucket: %v", keys)
	}
	for _, r := range []*cluster{a, b, c} {
		if files := filesUnder(r.dataDir, "artifacts/"); len(files) != 0 {
			t.Errorf("artifact files on a replica's disk: %v", files)
		}
	}

	// A's archive moves the log to S3; B and C read it from there.
	a.waitFor("the log to be archived", func() bool { return a.get(j.GetId()).GetLogArchived() })
	if keys := srv.Keys(t, "arcade", "ci/logs/"+j.GetId()+"/"); len(keys) != 1 || !strings.HasSuffix(keys[0], "/1.pack") {
		t.Errorf("archived log objects: %v", keys)
	}
	logA := a.logOf(j.GetId(), 0)
	for name, r := range map[string]*cluster{"B": b, "C": c} {
		got := r.logOf(j.GetId(), 0)
		if len(got) == 0 || len(got) != len(logA) {
			t.Fatalf("replica %s reads %d archived lines, A %d", name, len(got), len(logA))
		}
		for i := range got {
			if got[i].GetContent() != logA[i].GetContent() {
				t.Fatalf("replica %s line %d: %q, A: %q", name, i+1, got[i].GetContent(), logA[i].GetContent())
			}
		}
	}

	// Expiry: every replica sweeps; each object goes once.
	var short []string
	for i := range 3 {
		e := a.create(&jobv1.CreateJobRequest{Name: fmt.Sprint("short ", i), Commands: []string{"echo one > one.txt", "echo two > two.txt"},
			Artifacts: &agentv1.ArtifactConfig{Paths: []string{"*.txt"}, ExpireIn: durationpb.New(2 * time.Second)}})
		short = append(short, e.GetId())
	}
	for _, id := range short {
		if got := a.waitStatus(id, success, failed); got.GetStatus() != success {
			t.Fatalf("short-lived job: %v %s", got.GetStatus(), got.GetMessage())
		}
	}
	for _, id := range short {
		b.waitFor("artifacts of "+id+" to be swept", func() bool { return len(artifactsOf(t, c, id)) == 0 })
		if keys := srv.Keys(t, "arcade", "ci/artifacts/"+id+"/"); len(keys) != 0 {
			t.Errorf("objects of swept artifacts: %v", keys)
		}
	}
	removed := 0
	for _, r := range []*cluster{a, b, c} {
		removed += len(r.server.grepLog("expired artifact removed"))
		for _, rec := range r.server.grepLog("periodic work failed; retrying next round") {
			if at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(rec["time"])); err != nil || at.After(ready) {
				t.Errorf("periodic work failed: %v", rec)
			}
		}
	}
	if removed != 6 {
		t.Errorf("%d removals logged across the replicas, want 6 (each artifact once)", removed)
	}
	if len(srv.Keys(t, "arcade", "ci/artifacts/"+j.GetId()+"/")) != 2 {
		t.Error("the sweep removed artifacts that had not expired")
	}

	// The credentials appear in no log, and in no job log.
	var logs []string
	for _, r := range []*cluster{a, b, c} {
		logs = append(logs, r.server.logPath)
		for _, p := range r.agents {
			logs = append(logs, p.logPath)
		}
	}
	for _, p := range logs {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{srv.SecretKey, srv.AccessKey} {
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("%s holds a credential", filepath.Base(p))
			}
		}
	}
	for _, l := range logA {
		if strings.Contains(l.GetContent(), srv.SecretKey) || strings.Contains(l.GetContent(), srv.AccessKey) {
			t.Errorf("the job log holds a credential: %s", l.GetContent())
		}
	}
}

// dashboardDownload logs in to the dashboard at base, opens the job and
// clicks the artifact's Download button: the browser goes to the store (a
// presigned URL, not the dashboard's server) and saves the bytes.
func dashboardDownload(t *testing.T, base string, srv *s3test.Server, jobID, path string, content []byte) {
	t.Helper()
	chromium := needChromium(t)
	b := newBrowser(t, chromium, base)
	dir := t.TempDir()
	if _, err := chromedp.CallBrowser(b.ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir}); err != nil {
		t.Fatalf("download folder: %v", err)
	}
	b.open("/login")
	b.waitJS("the login page", `document.querySelector('#token')`)
	b.run("log in", chromedp.SendKeys(chromedp.CSS("#token"), apiToken), chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	b.waitJS("logged in", `location.pathname !== '/login'`)
	b.open("/jobs/" + jobID)
	b.waitJS("the artifacts listed", `[...document.querySelectorAll('[data-testid=artifacts] td.mono')].some(td => td.textContent === `+js(path)+`)`)
	// Record where the page sends the browser.
	evalJS[bool](b, `(() => { window.followed = []; const click = HTMLAnchorElement.prototype.click;
		HTMLAnchorElement.prototype.click = function () { window.followed.push(this.href); return click.call(this); }; return true })()`)
	evalJS[bool](b, `(() => { const row = [...document.querySelectorAll('[data-testid=artifacts] tbody tr')].find(r => r.querySelector('td').textContent === `+js(path)+`);
		row.querySelector('button').click(); return true })()`)
	b.waitJS("the link followed", `window.followed.length === 1`)
	if href := evalJS[string](b, `window.followed[0]`); !strings.HasPrefix(href, srv.Endpoint+"/") {
		t.Errorf("the dashboard sent the browser to %s, not to the store", href)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var done []string
		for _, f := range filesUnder(dir, "") {
			if b, err := os.ReadFile(f); err == nil && bytes.Equal(b, content) {
				done = append(done, f)
			}
		}
		if len(done) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no download of %s arrived in %s: %v", path, dir, filesUnder(dir, ""))
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.screenshot("s3-artifact-download")
}

// TestS3MultipartArtifact: with uploads through the server, a 200 MiB
// artifact goes into S3 as one multipart upload and comes back whole; a
// refused upload (wrong sha256) and an upload cut off midway leave no
// multipart upload behind (listed through the S3 API) and record nothing.
func TestS3MultipartArtifact(t *testing.T) {
	if testing.Short() {
		t.Skip("200 MiB")
	}
	srv := s3test.Start(t)
	srv.CreateBucket(t, "arcade")
	c := s3Cluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"), s3Ring(), srv, "arcade", "S3_SECRET_ACCESS_KEY", true, srv.SecretKey,
		"--artifact-uploads", "server", "--lease-ttl", "10m")
	c.startAgent("builder", 1, "real=yes")
	const size = 200 << 20
	j := c.create(&jobv1.CreateJobRequest{Name: "big", Selector: "real", Commands: []string{fmt.Sprintf("head -c %d /dev/urandom > big.bin", size)},
		Artifacts: &agentv1.ArtifactConfig{Paths: []string{"big.bin"}}})
	start := time.Now()
	deadline := start.Add(5 * time.Minute)
	for st := c.get(j.GetId()).GetStatus(); st != success; st = c.get(j.GetId()).GetStatus() {
		if st == failed || time.Now().After(deadline) {
			t.Fatalf("big: %v %s", st, c.get(j.GetId()).GetMessage())
		}
		time.Sleep(200 * time.Millisecond)
	}
	arts := artifactsOf(t, c, j.GetId())
	if len(arts) != 1 || arts[0].GetSizeBytes() != size {
		t.Fatalf("artifacts: %v", arts)
	}
	o, err := srv.Client("arcade").Head("ci/artifacts/" + j.GetId() + "/1/big.bin")
	if err != nil || o == nil || o.Size != size || o.SHA256 != arts[0].GetSha256() || !strings.HasSuffix(strings.Trim(o.ETag, `"`), "-25") {
		t.Fatalf("the object in S3: %+v %v; want one 25-part multipart upload of 200 MiB with the artifact's sha256", o, err)
	}
	if stored := c.server.grepLog("artifact stored"); len(stored) != 1 || stored[0]["transfer"] != "server" || stored[0]["parts"] != float64(0) {
		t.Errorf("stored as %v", stored)
	}
	t.Logf("200 MiB job with its upload through the server: %v", time.Since(start).Round(time.Millisecond))
	link, err := c.jobs.GetArtifactURL(context.Background(), &jobv1.GetArtifactURLRequest{JobId: j.GetId(), Path: "big.bin"})
	if err != nil || link.GetUrl() == "" {
		t.Fatalf("GetArtifactURL: %v %v", link, err)
	}
	code, got, _ := fetchURL(t, link.GetUrl())
	if code != 200 || len(got) != size || sha256Of(got) != arts[0].GetSha256() {
		t.Fatalf("download: %d, %d bytes", code, len(got))
	}

	// Uploads by hand that fail: nothing recorded, no upload left open.
	agents, id := fakeAgent(t, c, "by-hand")
	h := c.create(&jobv1.CreateJobRequest{Name: "by hand", Commands: []string{"true"}, Selector: "fake=by-hand"})
	if f, err := agents.FetchJob(context.Background(), &agentv1.FetchJobRequest{AgentId: id, Wait: durationpb.New(5 * time.Second)}); err != nil || f.GetJob().GetId() != h.GetId() {
		t.Fatalf("lease: %v %v", f, err)
	}
	data := got[:20<<20]
	header := &agentv1.ArtifactHeader{JobId: h.GetId(), Attempt: 1, Path: "part.bin", SizeBytes: int64(len(data)), Sha256: sha256Of([]byte("other"))}
	if _, err := upload(agents, header, data); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("upload with a wrong sha256: %v", err)
	}
	header.Sha256 = sha256Of(data)
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := agents.UploadArtifact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stream.Send(&agentv1.UploadArtifactRequest{Part: &agentv1.UploadArtifactRequest_Header{Header: header}})
	for off := 0; off < 17<<20; off += 256 << 10 {
		stream.Send(&agentv1.UploadArtifactRequest{Part: &agentv1.UploadArtifactRequest_Data{Data: data[off : off+256<<10]}})
	}
	time.Sleep(time.Second) // let parts reach the store
	cancel()
	c.waitFor("no multipart upload left", func() bool {
		ups, err := srv.Client("arcade").ListMultipartUploads("")
		return err == nil && len(ups) == 0
	})
	if arts := artifactsOf(t, c, h.GetId()); len(arts) != 0 {
		t.Errorf("failed uploads recorded %v", arts)
	}
	if keys := srv.Keys(t, "arcade", "ci/artifacts/"+h.GetId()+"/"); len(keys) != 0 {
		t.Errorf("failed uploads left objects %v", keys)
	}
}

// TestS3StoreFailures: wrong credentials and a missing bucket fail the job
// with "artifact X not stored" and the store's reason, recording nothing;
// a store down for 10 s is waited for, the reason shown in the job's log,
// and the artifact stored once it is back.
func TestS3StoreFailures(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "arcade")
	dsn := func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "arcade.db") }
	for _, tc := range []struct {
		name, bucket, secret, reason string
	}{
		{"wrong credentials", "arcade", "wrong-" + srv.SecretKey, "SignatureDoesNotMatch"},
		{"missing bucket", "not-there", srv.SecretKey, "NoSuchBucket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := dsn(t)
			c := s3Cluster(t, db, s3Ring(), srv, tc.bucket, "S3_SECRET_ACCESS_KEY", true, tc.secret)
			c.startAgent("builder", 1, "case="+strings.ReplaceAll(tc.name, " ", "-"))
			j := c.create(&jobv1.CreateJobRequest{Name: tc.name, Selector: "case=" + strings.ReplaceAll(tc.name, " ", "-"),
				Commands: []string{"echo built > out.txt"}, Artifacts: &agentv1.ArtifactConfig{Paths: []string{"out.txt"}}})
			got := c.waitStatus(j.GetId(), success, failed)
			if got.GetStatus() != failed || !strings.HasPrefix(got.GetMessage(), "artifact out.txt not stored: ") || !strings.Contains(got.GetMessage(), tc.reason) {
				t.Errorf("job: %v %q, want FAILED with artifact out.txt not stored: …%s…", got.GetStatus(), got.GetMessage(), tc.reason)
			}
			t.Logf("%s: %s", tc.name, got.GetMessage())
			st, err := store.Open(context.Background(), db, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if row, err := st.GetJob(context.Background(), j.GetId()); err != nil || row.EndReason != jobstate.ReasonArtifactUpload {
				t.Errorf("end reason %q (%v), want %q", row.EndReason, err, jobstate.ReasonArtifactUpload)
			}
			if arts := artifactsOf(t, c, j.GetId()); len(arts) != 0 {
				t.Errorf("recorded %v", arts)
			}
		})
	}
	if keys := srv.Keys(t, "arcade", ""); len(keys) != 0 {
		t.Errorf("objects stored by failed uploads: %v", keys)
	}

	t.Run("store down for 10 s", func(t *testing.T) {
		c := s3Cluster(t, dsn(t), s3Ring(), srv, "arcade", "S3_SECRET_ACCESS_KEY", true, srv.SecretKey)
		c.startAgent("patient", 1, "case=down")
		srv.Down()
		j := c.create(&jobv1.CreateJobRequest{Name: "while down", Selector: "case=down",
			Commands: []string{"echo built > out.txt"}, Artifacts: &agentv1.ArtifactConfig{Paths: []string{"out.txt"}}})
		var reason string
		c.waitFor("a retry in the job's log", func() bool {
			for _, l := range c.logOf(j.GetId(), 0) {
				if strings.HasPrefix(l.GetContent(), "artifact out.txt: ") && strings.Contains(l.GetContent(), "trying again") {
					reason = l.GetContent()
					return true
				}
			}
			return false
		})
		if !strings.Contains(reason, "connection refused") {
			t.Errorf("retry line %q does not say why", reason)
		}
		t.Logf("while down: %s", reason)
		time.Sleep(10 * time.Second)
		if st := c.get(j.GetId()).GetStatus(); st != agentv1.JobStatus_JOB_STATUS_RUNNING {
			t.Fatalf("after 10 s down the job is %v, want still RUNNING (retrying)", st)
		}
		srv.Up(t)
		if got := c.waitStatus(j.GetId(), success, failed); got.GetStatus() != success {
			t.Fatalf("once the store is back: %v %s", got.GetStatus(), got.GetMessage())
		}
		if got, _, err := download(c, j.GetId(), "out.txt"); err != nil || string(got) != "built\n" {
			t.Errorf("download: %q %v", got, err)
		}
	})
}

// TestS3PresignedRefusals: a presigned PUT of other bytes than its sha256,
// or made after its URL expired, is refused by the store, and the server
// then records nothing; a finish that declares other bytes than the store
// holds removes them. The URL of a GET expires too.
func TestS3PresignedRefusals(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "arcade")
	c := s3Cluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"), s3Ring(), srv, "arcade", "S3_SECRET_ACCESS_KEY", true, srv.SecretKey,
		"--artifact-url-ttl", "2s", "--lease-ttl", "10m")
	ctx := context.Background()
	agents, id := fakeAgent(t, c, "by-hand")
	j := c.create(&jobv1.CreateJobRequest{Name: "by hand", Commands: []string{"true"}, Selector: "fake=by-hand"})
	if f, err := agents.FetchJob(ctx, &agentv1.FetchJobRequest{AgentId: id, Wait: durationpb.New(5 * time.Second)}); err != nil || f.GetJob().GetId() != j.GetId() {
		t.Fatalf("lease: %v %v", f, err)
	}
	data := []byte("the bytes the agent declared\n")
	header := &agentv1.ArtifactHeader{JobId: j.GetId(), Attempt: 1, Path: "dist/app.txt", SizeBytes: int64(len(data)), Sha256: sha256Of(data)}
	begin := func() *agentv1.PresignedRequest {
		t.Helper()
		resp, err := agents.BeginArtifactUpload(ctx, &agentv1.BeginArtifactUploadRequest{Header: header})
		if err != nil || resp.GetTransfer() != agentv1.ArtifactTransfer_ARTIFACT_TRANSFER_DIRECT {
			t.Fatalf("BeginArtifactUpload: %v %v", resp, err)
		}
		return resp.GetUpload()
	}
	finish := func() error {
		_, err := agents.FinishArtifactUpload(ctx, &agentv1.FinishArtifactUploadRequest{Header: header})
		return err
	}
	client := transfer.Client()
	nothing := func(what string) {
		t.Helper()
		if arts := artifactsOf(t, c, j.GetId()); len(arts) != 0 {
			t.Errorf("%s: recorded %v", what, arts)
		}
		if keys := srv.Keys(t, "arcade", ""); len(keys) != 0 {
			t.Errorf("%s: objects %v", what, keys)
		}
	}

	// Other bytes than declared: the store refuses them.
	other := []byte("the bytes the agent did not declare")
	err := transfer.Put(ctx, client, begin(), bytes.NewReader(other), int64(len(other)))
	if err == nil || !strings.Contains(err.Error(), "BadDigest") {
		t.Errorf("PUT of other bytes: %v", err)
	}
	if err := finish(); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "did not reach") {
		t.Errorf("finish after a refused PUT: %v", err)
	}
	nothing("wrong sha256")

	// An expired URL.
	put := begin()
	time.Sleep(3 * time.Second)
	err = transfer.Put(ctx, client, put, bytes.NewReader(data), int64(len(data)))
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("PUT with an expired URL: %v", err)
	}
	if err := finish(); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("finish after an expired PUT: %v", err)
	}
	nothing("expired URL")

	// A finish declaring other bytes than the store holds: removed.
	if err := transfer.Put(ctx, client, begin(), bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	lie := proto.Clone(header).(*agentv1.ArtifactHeader)
	lie.Sha256 = sha256Of(other)
	if _, err := agents.FinishArtifactUpload(ctx, &agentv1.FinishArtifactUploadRequest{Header: lie}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("finish declaring other bytes: %v", err)
	}
	nothing("finish declaring other bytes")

	// The real thing.
	if err := transfer.Put(ctx, client, begin(), bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := finish(); err != nil {
		t.Fatal(err)
	}
	arts := artifactsOf(t, c, j.GetId())
	if len(arts) != 1 || !arts[0].GetStored() || arts[0].GetSha256() != sha256Of(data) {
		t.Fatalf("recorded %v", arts)
	}
	link, err := c.jobs.GetArtifactURL(ctx, &jobv1.GetArtifactURLRequest{JobId: j.GetId(), Path: "dist/app.txt"})
	if err != nil || link.GetUrl() == "" {
		t.Fatalf("GetArtifactURL: %v %v", link, err)
	}
	if code, got, _ := fetchURL(t, link.GetUrl()); code != 200 || !bytes.Equal(got, data) {
		t.Errorf("GET: %d %q", code, got)
	}
	time.Sleep(3 * time.Second)
	if code, body, _ := fetchURL(t, link.GetUrl()); code != http.StatusForbidden || !bytes.Contains(body, []byte("expired")) {
		t.Errorf("GET with an expired URL: %d %s", code, body)
	}
	if keys := srv.Keys(t, "arcade", ""); !slices.Equal(keys, []string{"ci/artifacts/" + j.GetId() + "/1/dist/app.txt"}) {
		t.Errorf("objects: %v", keys)
	}
}

// TestS3JobCache: with the S3 store, a job's cache entry goes straight to
// the bucket through a presigned PUT, and another agent (keeping no local
// copy) restores it straight from the bucket through a presigned GET.
func TestS3JobCache(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "arcade")
	c := s3Cluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"), s3Ring(), srv, "arcade", "S3_SECRET_ACCESS_KEY", true, srv.SecretKey)
	parallelDone(
		func() { c.startAgentWith("writer", 1, nil, "role=w") },
		func() { c.startAgentWith("reader", 1, []string{"--cache-local-bytes", "-1"}, "role=r") },
	)
	c.createPipeline(`
name: s3-cache
stages:
  - name: save
    jobs:
      - name: save
        selector: role=w
        cache: {key: "mods-${{ arcade.os }}", paths: [mods]}
        commands: ["mkdir -p mods && seq 1 200000 > mods/list.txt"]
  - name: restore
    jobs:
      - name: restore
        selector: role=r
        cache: {key: "mods-${{ arcade.os }}", paths: [mods]}
        commands: ['test "$(tail -n 1 mods/list.txt)" = 200000']
`)
	r := c.waitRun(c.trigger("s3-cache", nil).GetId())
	_, saveLog := buildLog(t, c, r, "save")
	_, restoreLog := buildLog(t, c, r, "restore")
	if r.GetStatus() != success {
		t.Fatalf("run %v %s\nsave:\n%s\nrestore:\n%s", r.GetStatus(), r.GetMessage(), saveLog, restoreLog)
	}
	mustContain(t, "save", saveLog, "cache saved: key mods-linux", "through the store")
	mustContain(t, "restore", restoreLog, "cache restored: key mods-linux", "from the store")
}
