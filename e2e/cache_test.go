package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/server/objects"
	"github.com/go-arcade/arcade/server/store"
	"github.com/go-arcade/arcade/server/trigger"
)

// cacheMax bounds all cache entries of the test's server: four entries of
// the eviction scenario fit, a fifth evicts.
const cacheMax = 300_000

// TestJobCache runs, on each database: a miss then a hit on the same agent
// (from its local copy), a key that changes with go.sum and falls back to
// a restore key, the branch scope (a branch reads the default branch's
// entries, not the other way), eviction at the size limit, and entries
// holding "../" or a link leading out refused.
func TestJobCache(t *testing.T) {
	eachDB(t, func(t *testing.T, dsn string) {
		storeDir := t.TempDir()
		_, port, _ := net.SplitHostPort(freeAddr(t))
		c := storeCluster(t, dsn, storeDir, "--cache-max-bytes", "300000", "--webhook-port", port)
		work := t.TempDir()
		c.startAgentWith("cache", 2, []string{"--work-dir", work})
		t.Run("miss, hit, key change, restore key", func(t *testing.T) { cacheHitMiss(t, c) })
		t.Run("branch scope", func(t *testing.T) { cacheScope(t, c, "http://127.0.0.1:"+port) })
		t.Run("unsafe entries refused", func(t *testing.T) { cacheUnsafe(t, c, storeDir, work) })
		t.Run("eviction at the size limit", func(t *testing.T) { cacheEviction(t, c) })
		// Last: the agent it starts could take the other subtests' jobs.
		t.Run("an agent keeping no copy", func(t *testing.T) { cacheNoLocalCopy(t, c) })
	})
}

// cacheNoLocalCopy: an agent that keeps no local copy of entries
// (--cache-local-bytes -1) restores a hit from the server.
func cacheNoLocalCopy(t *testing.T, c *cluster) {
	c.startAgentWith("no-copy", 1, []string{"--cache-local-bytes", "-1"}, "role=no-copy")
	c.createPipeline(`
name: no-copy
stages:
  - name: s
    jobs:
      - name: deps
        selector: role=no-copy
        cache: {key: no-copy, paths: [deps]}
        commands: ['if [ -f deps/x ]; then echo "found $(cat deps/x)"; fi', 'mkdir -p deps && echo kept > deps/x']
`)
	r := c.waitRun(c.trigger("no-copy", nil).GetId())
	_, log := buildLog(t, c, r, "deps")
	mustContain(t, "first run", log, "cache miss", "cache saved: key no-copy")
	r = c.waitRun(c.trigger("no-copy", nil).GetId())
	_, log = buildLog(t, c, r, "deps")
	mustContain(t, "second run", log, "from the server", "found kept")
}

// buildLog is the log of a run's job.
func buildLog(t *testing.T, c *cluster, r *jobv1.PipelineRun, job string) (*jobv1.JobDetail, string) {
	t.Helper()
	j := jobsByName(r)[job]
	return j, jobLog(c, j.GetId())
}

func mustContain(t *testing.T, what, log string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(log, w) {
			t.Errorf("%s: the log lacks %q:\n%s", what, w, log)
		}
	}
}

func cacheHitMiss(t *testing.T, c *cluster) {
	c.createPipeline(`
name: cached
stages:
  - name: prep
    jobs:
      - {name: sums, commands: ['echo "$SUM" > go.sum'], artifacts: {paths: [go.sum]}}
  - name: build
    jobs:
      - name: build
        needs_artifacts: [sums]
        cache:
          key: "go-${{ arcade.os }}-${{ hashFiles('**/go.sum') }}"
          restore_keys: ["go-${{ arcade.os }}-"]
          paths: [gomod]
        commands:
          - 'if [ -f gomod/marker ]; then echo "found $(cat gomod/marker)"; else echo "found nothing"; fi'
          - 'mkdir -p gomod/pkg && echo "$SUM" > gomod/marker && head -c 65536 /dev/urandom > gomod/pkg/blob && ln -sf ../marker gomod/pkg/link'
`)
	run := func(sum string) string {
		r := c.waitRun(c.trigger("cached", map[string]string{"SUM": sum}).GetId())
		j, log := buildLog(t, c, r, "build")
		if r.GetStatus() != success {
			t.Fatalf("run with go.sum %s: %v %q\n%s", sum, j.GetStatus(), j.GetMessage(), log)
		}
		return log
	}
	first := run("v1")
	mustContain(t, "first run", first, "cache miss: no entry for key go-linux-", "found nothing", "cache saved: key go-linux-")
	second := run("v1")
	mustContain(t, "second run", second, "(exact key, branch main) from the agent's local copy", "found v1", "was restored as it is")
	// go.sum changed: a new key, which falls back to the restore key.
	third := run("v2")
	mustContain(t, "third run", third, "(restore key, branch main)", "found v1", "cache saved: key go-linux-")
	key := func(log string) string {
		i := strings.Index(log, "cache saved: key ")
		if i < 0 {
			return ""
		}
		rest := log[i+len("cache saved: key "):]
		return rest[:strings.IndexByte(rest, ':')]
	}
	if k1, k3 := key(first), key(third); k1 == "" || k1 == k3 {
		t.Errorf("the key did not change with go.sum: %q, %q", k1, k3)
	}
}

func cacheScope(t *testing.T, c *cluster, hookURL string) {
	c.createPipeline(`
name: scoped
triggers:
  - {type: webhook, secret: "hush"}
stages:
  - name: s
    jobs:
      - name: deps
        cache: {key: deps, paths: [deps]}
        commands:
          - 'if [ -f deps/from ]; then echo "restored from $(cat deps/from)"; else echo "restored nothing"; fi'
          - 'mkdir -p deps && echo "$ARCADE_BRANCH" > deps/from'
`)
	push := func(branch string) string {
		payload := []byte(`{"ref":"refs/heads/` + branch + `","after":"0123456789abcdef0123456789abcdef01234567",
"head_commit":{"id":"0123456789abcdef0123456789abcdef01234567","message":"m","author":{"name":"Ada"}},"repository":{"full_name":"org/app"}}`)
		before := len(c.runs("scoped"))
		req, _ := http.NewRequest(http.MethodPost, hookURL+"/hooks/scoped", bytes.NewReader(payload))
		req.Header.Set(trigger.SignatureHeader, trigger.Sign("hush", payload))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("webhook answered %d", resp.StatusCode)
		}
		rs := c.runs("scoped")
		if len(rs) != before+1 {
			t.Fatalf("%d runs", len(rs))
		}
		r := c.waitRun(rs[0].GetId())
		_, log := buildLog(t, c, r, "deps")
		if r.GetStatus() != success || r.GetBranch() != branch {
			t.Fatalf("run of %s: %v, branch %q", branch, r.GetStatus(), r.GetBranch())
		}
		return log
	}
	mustContain(t, "main", push("main"), "restored nothing", "cache saved: key deps")
	// A branch reads the default branch's entry, and writes its own.
	mustContain(t, "feature", push("feature"), "restored from main", "(restore key, branch main)", "cache saved: key deps")
	// The default branch never reads a branch's entry.
	mustContain(t, "main again", push("main"), "restored from main", "(exact key, branch main)")
	mustContain(t, "feature again", push("feature"), "restored from feature", "(exact key, branch feature)")
}

// craft is a tar.zst holding one entry.
func craft(t *testing.T, h tar.Header) []byte {
	var buf bytes.Buffer
	enc, _ := zstd.NewWriter(&buf)
	tw := tar.NewWriter(enc)
	body := []byte("escaped\n")
	if h.Typeflag == tar.TypeReg {
		h.Size = int64(len(body))
	}
	h.Mode = 0o644
	if err := tw.WriteHeader(&h); err != nil {
		t.Fatal(err)
	}
	if h.Typeflag == tar.TypeReg {
		tw.Write(body)
	}
	tw.Close()
	enc.Close()
	return buf.Bytes()
}

func cacheUnsafe(t *testing.T, c *cluster, storeDir, work string) {
	ctx := context.Background()
	c.createPipeline(`
name: evil
stages:
  - name: s
    jobs:
      - {name: dotdot, cache: {key: dotdot, paths: [c]}, commands: ["mkdir -p c && echo ok > c/f"]}
      - {name: link, cache: {key: link, paths: [c]}, commands: ["mkdir -p c && echo ok > c/f"]}
`)
	if r := c.waitRun(c.trigger("evil", nil).GetId()); r.GetStatus() != success {
		t.Fatalf("first run: %v", r.GetStatus())
	}
	// The store's entries are replaced by archives no agent made: one
	// writes "../../../escaped-dotdot", one links out of the workspace.
	st, err := store.Open(ctx, c.dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	entries, err := st.CacheEntries(ctx, c.pipelineID("evil"))
	if err != nil || len(entries) != 2 {
		t.Fatalf("entries of evil: %d, %v", len(entries), err)
	}
	for _, e := range entries {
		data := craft(t, tar.Header{Name: "../../../escaped-dotdot", Typeflag: tar.TypeReg})
		if e.Key == "link" {
			data = craft(t, tar.Header{Name: "c/out", Typeflag: tar.TypeSymlink, Linkname: work})
		}
		sum := sha256.Sum256(data)
		key := e.StorageKey
		if e.Parts > 0 {
			key = objects.PartKey(key, 0)
			e.Parts = 1
		}
		replaceObject(t, storeDir, key, data, hex.EncodeToString(sum[:]))
		e.SizeBytes, e.SHA256 = int64(len(data)), hex.EncodeToString(sum[:])
		if _, err := st.SaveCacheEntry(ctx, e, 0); err != nil {
			t.Fatal(err)
		}
	}
	r := c.waitRun(c.trigger("evil", nil).GetId())
	jobs := jobsByName(r)
	if j := jobs["dotdot"]; j.GetStatus() != failed || !strings.Contains(j.GetMessage(), `climbs out with ".."`) {
		t.Errorf("dotdot: %v %q", j.GetStatus(), j.GetMessage())
	}
	if j := jobs["link"]; j.GetStatus() != failed || !strings.Contains(j.GetMessage(), "outside the workspace") {
		t.Errorf("link: %v %q", j.GetStatus(), j.GetMessage())
	}
	filepath.Walk(filepath.Dir(work), func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasPrefix(info.Name(), "escaped-") {
			t.Errorf("a cache entry wrote %s, outside its workspace", p)
		}
		return nil
	})
}

// replaceObject puts data in fs-store's place of key, with its record.
func replaceObject(t *testing.T, storeDir, key string, data []byte, sum string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(storeDir, "objects", filepath.FromSlash(key)), data, 0o644); err != nil {
		t.Fatal(err)
	}
	metaPath := filepath.Join(storeDir, "meta", filepath.FromSlash(key)+".json")
	raw, err := os.ReadFile(metaPath)
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatal(err)
	}
	meta["size"], meta["sha256"] = len(data), sum
	raw, _ = json.Marshal(meta)
	if err := os.WriteFile(metaPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) pipelineID(name string) string {
	c.t.Helper()
	resp, err := c.jobs.GetPipeline(context.Background(), &jobv1.GetPipelineRequest{PipelineId: name})
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.GetPipeline().GetId()
}

func cacheEviction(t *testing.T, c *cluster) {
	ctx := context.Background()
	c.createPipeline(`
name: evict
stages:
  - name: s
    jobs:
      - name: fill
        cache: {key: "e-${{ env.N }}", paths: [blob]}
        commands: ["head -c 65536 /dev/urandom > blob"]
`)
	for _, n := range []string{"1", "2", "3", "4", "5"} {
		if r := c.waitRun(c.trigger("evict", map[string]string{"N": n}).GetId()); r.GetStatus() != success {
			t.Fatalf("run %s: %v", n, r.GetStatus())
		}
	}
	st, err := store.Open(ctx, c.dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	all, err := st.CacheEntries(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	keys := map[string]bool{}
	for _, e := range all {
		total += e.SizeBytes
		keys[e.Key] = true
	}
	if total > cacheMax {
		t.Errorf("%d bytes of cache entries kept, over the limit of %d", total, cacheMax)
	}
	if keys["e-1"] || !keys["e-2"] || !keys["e-5"] {
		t.Errorf("entries kept: %v; want e-1, the least recently used, evicted and e-2…e-5 kept", keys)
	}
	r := c.waitRun(c.trigger("evict", map[string]string{"N": "1"}).GetId())
	_, log := buildLog(t, c, r, "fill")
	mustContain(t, "after eviction", log, "cache miss: no entry for key e-1")
}
