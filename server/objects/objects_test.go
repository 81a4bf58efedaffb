package objects_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/host/pdktest"
	"github.com/go-arcade/arcade/internal/s3test"
	"github.com/go-arcade/arcade/server/objects"
)

func TestMain(m *testing.M) { pdktest.Main(m) }

// load loads one storage plugin from a plugins.yaml entry, with stored
// secrets, and returns a store over it with the given part size.
func load(t *testing.T, entry string, secrets map[string]string, partSize int) *objects.Store {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "plugins.yaml")
	if err := os.WriteFile(cfg, []byte("plugins:\n"+entry), 0o644); err != nil {
		t.Fatal(err)
	}
	resolve := func(_ context.Context, names []string) (map[string]string, error) {
		out := map[string]string{}
		for _, n := range names {
			v, ok := secrets[n]
			if !ok {
				return nil, fmt.Errorf("no secret named %s", n)
			}
			out[n] = v
		}
		return out, nil
	}
	m := host.NewManager(slog.New(slog.DiscardHandler), host.WithCacheDir(pdktest.CacheDir()), host.WithSecrets(resolve))
	t.Cleanup(func() { m.Close(context.Background()) })
	if err := m.LoadPluginsFromConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if err := m.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	return objects.New(func() (objects.Plugin, error) {
		p, err := m.GetStoragePlugin("store")
		if err != nil {
			return nil, err
		}
		return p, nil
	}, partSize)
}

// fsStore is the first-party fs-store, built from source, over a fresh
// folder, as the server runs it.
func fsStore(t *testing.T) (*objects.Store, string) {
	dir := t.TempDir()
	entry := fmt.Sprintf("  - {name: store, path: %s, config: {verify_loads: \"false\"}, grants: {allowed_paths: [{host: %s, guest: /store, mode: rw}], memory_limit_mib: 128}}\n",
		pdktest.Build(t, "../../plugins/fs-store"), dir)
	return load(t, entry, nil, 256<<10), dir
}

// s3Store is s3-store over a bucket of a fresh S3 server.
func s3Store(t *testing.T) (*objects.Store, *s3test.Server) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "objects")
	entry := fmt.Sprintf(`  - name: store
    path: %s
    config: {endpoint: %q, bucket: objects}
    secrets: {access_key_id: S3_ACCESS_KEY_ID, secret_access_key: S3_SECRET_ACCESS_KEY}
    grants: {allowed_hosts: [127.0.0.1], memory_limit_mib: 256, timeout: 1m}
`, pdktest.Build(t, "../../plugins/s3-store"), srv.Endpoint)
	// Parts of S3's smallest size keep the bytes through the sandbox few.
	return load(t, entry, map[string]string{"S3_ACCESS_KEY_ID": srv.AccessKey, "S3_SECRET_ACCESS_KEY": srv.SecretKey}, 5<<20), srv
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// write stores data through a Writer in uneven pieces.
func write(t *testing.T, s *objects.Store, key string, data []byte) (int32, error) {
	t.Helper()
	w := s.NewWriter(t.Context(), key, objects.WriteOptions{SHA256: sum(data), Size: int64(len(data))})
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 100_000)
		if _, err := w.Write(rest[:n]); err != nil {
			w.Abort(context.Background())
			return 0, err
		}
		rest = rest[n:]
	}
	return w.Close()
}

func read(t *testing.T, s *objects.Store, key string, parts int32, data []byte) ([]byte, error) {
	t.Helper()
	var got bytes.Buffer
	err := s.Read(t.Context(), key, parts, int64(len(data)), sum(data), func(b []byte) error { got.Write(b); return nil })
	return got.Bytes(), err
}

// TestPartsRoundTrip: with fs-store (no multipart), an object is stored in
// parts (several saved at once), read back whole, removed, and a part
// corrupted on disk is noticed.
func TestPartsRoundTrip(t *testing.T) {
	s, dir := fsStore(t)
	ctx := t.Context()
	data := pattern(5*256<<10 + 123)
	parts, err := write(t, s, "artifacts/j/1/dist/app.bin", data)
	if err != nil || parts != 6 {
		t.Fatalf("close: %d parts, %v; want 6", parts, err)
	}
	if got, err := read(t, s, "artifacts/j/1/dist/app.bin", parts, data); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (%v), not the %d written", len(got), err, len(data))
	}
	part := filepath.Join(dir, "objects", "artifacts/j/1/dist/app.bin/part-000002")
	b, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	b[10] ^= 0xff
	if err := os.WriteFile(part, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := read(t, s, "artifacts/j/1/dist/app.bin", parts, data); !errors.Is(err, objects.ErrCorrupt) {
		t.Errorf("corrupt part: %v, want ErrCorrupt", err)
	}
	for range 2 { // removing again is fine
		if err := s.Remove(ctx, "artifacts/j/1/dist/app.bin", parts); err != nil {
			t.Fatal(err)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "objects", "artifacts/j/1/dist/app.bin/*")); len(left) != 0 {
		t.Errorf("parts left: %v", left)
	}
	// An aborted write leaves nothing; an empty object is one empty part.
	w := s.NewWriter(ctx, "artifacts/j/1/aborted", objects.WriteOptions{})
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "objects", "artifacts/j/1/aborted/*")); len(left) != 0 {
		t.Errorf("aborted parts left: %v", left)
	}
	w = s.NewWriter(ctx, "artifacts/j/1/empty", objects.WriteOptions{})
	if n, err := w.Close(); err != nil || n != 1 {
		t.Errorf("empty object: %d parts, %v", n, err)
	}
	if s.CanPresign() {
		t.Error("fs-store presigns?")
	}
	if _, err := s.PresignGet(ctx, "artifacts/j/1/empty", "", time.Minute); !errors.Is(err, objects.ErrCannotPresign) {
		t.Errorf("presign with fs-store: %v", err)
	}
}

// TestMultipart: with s3-store, a large object goes up as one multipart
// upload and comes back in ranges; a small one is one save; an aborted
// upload, and one aborted after a part failed, leave no parts in the store.
func TestMultipart(t *testing.T) {
	s, srv := s3Store(t)
	ctx := t.Context()
	data := pattern(10<<20 + 7) // three parts of 5 MiB, the last 7 bytes
	parts, err := write(t, s, "artifacts/j/1/big.bin", data)
	if err != nil || parts != 0 {
		t.Fatalf("close: %d, %v; want one object", parts, err)
	}
	c := srv.Client("objects")
	o, err := c.Head("artifacts/j/1/big.bin")
	if err != nil || o == nil || !strings.HasSuffix(strings.Trim(o.ETag, `"`), "-3") || o.SHA256 != sum(data) {
		t.Fatalf("stored object: %+v %v; want a three-part upload with the sha256", o, err)
	}
	if got, err := read(t, s, "artifacts/j/1/big.bin", 0, data); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes: %v", len(got), err)
	}
	small := []byte("small enough for one save")
	if parts, err := write(t, s, "artifacts/j/1/small.txt", small); err != nil || parts != 0 {
		t.Fatal(err)
	}
	if got, err := read(t, s, "artifacts/j/1/small.txt", 0, small); err != nil || !bytes.Equal(got, small) {
		t.Fatalf("small: %q %v", got, err)
	}
	// A recorded digest the bytes do not have: the read says so.
	if _, err := read(t, s, "artifacts/j/1/small.txt", 0, []byte("other")); !errors.Is(err, objects.ErrCorrupt) {
		t.Errorf("read with a wrong digest: %v", err)
	}

	w := s.NewWriter(ctx, "artifacts/j/1/aborted.bin", objects.WriteOptions{SHA256: sum(data)})
	if _, err := w.Write(data[:6<<20]); err != nil {
		t.Fatal(err)
	}
	if ups, _ := c.ListMultipartUploads(""); len(ups) != 1 {
		t.Errorf("uploads in progress: %v", ups)
	}
	if err := w.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if ups, err := c.ListMultipartUploads(""); err != nil || len(ups) != 0 {
		t.Errorf("uploads left after the abort: %v %v", ups, err)
	}
	if o, _ := c.Head("artifacts/j/1/aborted.bin"); o != nil {
		t.Errorf("aborted object exists: %+v", o)
	}

	// The store goes down during an upload: the writer fails as unavailable;
	// once it is back, Abort leaves nothing.
	w = s.NewWriter(ctx, "artifacts/j/1/interrupted.bin", objects.WriteOptions{})
	if _, err := w.Write(data[:6<<20]); err != nil {
		t.Fatal(err)
	}
	srv.Down()
	_, err = w.Write(data[6<<20:])
	if err == nil {
		_, err = w.Close()
	}
	if !errors.Is(err, objects.ErrUnavailable) {
		t.Errorf("store down: %v, want ErrUnavailable", err)
	}
	srv.Up(t)
	if err := w.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if ups, err := c.ListMultipartUploads(""); err != nil || len(ups) != 0 {
		t.Errorf("uploads left after the store came back: %v %v", ups, err)
	}
	// A written object removed after Close (its record failed, say).
	w = s.NewWriter(ctx, "artifacts/j/1/unrecorded.bin", objects.WriteOptions{})
	w.Write(data[:6<<20])
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if o, _ := c.Head("artifacts/j/1/unrecorded.bin"); o != nil {
		t.Errorf("object left after Abort following Close: %+v", o)
	}
}

// TestPresigned: with s3-store, a presigned PUT stores exactly the bytes
// of its sha256, Stat describes them, a presigned GET returns them; other
// bytes are refused and leave no object.
func TestPresigned(t *testing.T) {
	s, _ := s3Store(t)
	ctx := t.Context()
	body := []byte("moved without the server")
	if !s.CanPresign() || !s.CanPresignPut(int64(len(body))) {
		t.Fatal("s3-store cannot presign")
	}
	put, err := s.PresignPut(ctx, "artifacts/j/1/direct.txt", int64(len(body)), sum(body), objects.Meta{Expires: time.Now().Add(time.Hour)}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	do := func(p *objects.Presigned, b []byte) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(p.Method, p.URL, bytes.NewReader(b))
		for k, v := range p.Header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, got
	}
	if code, _ := do(put, []byte("not the bytes it was made for")); code/100 == 2 {
		t.Errorf("presigned PUT took other bytes: %d", code)
	}
	if _, err := s.Stat(ctx, "artifacts/j/1/direct.txt"); !errors.Is(err, objects.ErrNotFound) {
		t.Errorf("stat after a refused PUT: %v", err)
	}
	if code, msg := do(put, body); code != 200 {
		t.Fatalf("presigned PUT: %d %s", code, msg)
	}
	o, err := s.Stat(ctx, "artifacts/j/1/direct.txt")
	if err != nil || o.Size != int64(len(body)) || o.SHA256 != sum(body) || o.Expires.IsZero() {
		t.Fatalf("stat: %+v %v", o, err)
	}
	get, err := s.PresignGet(ctx, "artifacts/j/1/direct.txt", "direct.txt", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, got := do(get, nil); code != 200 || !bytes.Equal(got, body) {
		t.Errorf("presigned GET: %d %q", code, got)
	}
}

// TestNoStore: without a plugin every call says so.
func TestNoStore(t *testing.T) {
	s := objects.New(func() (objects.Plugin, error) { return nil, errors.New("plugin fs-store not loaded") }, 0)
	if err := s.Available(); !errors.Is(err, objects.ErrNoStore) {
		t.Errorf("Available: %v", err)
	}
	if _, err := s.Load(t.Context(), "k"); !errors.Is(err, objects.ErrNoStore) {
		t.Errorf("Load: %v", err)
	}
	if _, err := s.PresignGet(t.Context(), "k", "", time.Minute); !errors.Is(err, objects.ErrNoStore) {
		t.Errorf("PresignGet: %v", err)
	}
	var none *objects.Store
	if err := none.Available(); !errors.Is(err, objects.ErrNoStore) {
		t.Errorf("nil store: %v", err)
	}
}
