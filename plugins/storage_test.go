package plugins_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/host/pdktest"
	"github.com/go-arcade/arcade/internal/s3test"
	"github.com/go-arcade/arcade/pdk"
)

// storeUnderTest is a storage plugin loaded for the conformance suite.
type storeUnderTest struct {
	p *pdktest.Plugin
	// uploads lists the multipart uploads in progress (stores with the
	// multipart feature).
	uploads func(t *testing.T) int
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func openFSStore(t *testing.T) *storeUnderTest {
	p := pdktest.Load(t, wasm(t, "fs-store"), pdktest.Options{Kind: "storage",
		Paths: []host.PathGrant{{Host: t.TempDir(), Guest: "/store", Mode: "rw"}}})
	return &storeUnderTest{p: p}
}

// s3Store loads s3-store over a bucket of a fresh S3 server.
func s3Store(t *testing.T, logger *slog.Logger, edit func(cfg map[string]string, hosts *[]string)) (*pdktest.Plugin, *s3test.Server) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "conformance")
	cfg := map[string]string{"endpoint": srv.Endpoint, "bucket": "conformance", "prefix": "arcade/",
		"access_key_id": srv.AccessKey, "secret_access_key": srv.SecretKey}
	hosts := []string{"127.0.0.1"}
	if edit != nil {
		edit(cfg, &hosts)
	}
	return pdktest.Load(t, wasm(t, "s3-store"), pdktest.Options{Kind: "storage", Config: cfg, Hosts: hosts,
		MemoryLimitMiB: 256, MaxInstances: 2, Logger: logger}), srv
}

func openS3Store(t *testing.T) *storeUnderTest {
	p, srv := s3Store(t, nil, nil)
	return &storeUnderTest{p: p, uploads: func(t *testing.T) int {
		ups, err := srv.Client("conformance").ListMultipartUploads("")
		if err != nil {
			t.Fatal(err)
		}
		return len(ups)
	}}
}

// TestStorageConformance holds every storage plugin to the contract: what
// is saved loads back with its size, sha256, content type, metadata and
// expiry; an expired object is gone; listings come in pages; a missing
// object is NOT_FOUND; deletes are idempotent; and each optional feature
// the plugin declares works as the contract says.
func TestStorageConformance(t *testing.T) {
	for _, s := range []struct {
		name string
		open func(*testing.T) *storeUnderTest
	}{{"fs-store", openFSStore}, {"s3-store", openS3Store}} {
		t.Run(s.name, func(t *testing.T) { conformance(t, s.open(t)) })
	}
}

func conformance(t *testing.T, s *storeUnderTest) {
	p := s.p
	var md pdk.Metadata
	if err := p.Call("metadata", nil, &md); err != nil {
		t.Fatal(err)
	}
	features := pdk.StorageFeatures{}
	if md.Storage != nil {
		features = *md.Storage
	}

	content := bytes.Repeat([]byte("conformance \x00\xff "), 4000)
	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	var saved pdk.SaveResponse
	if err := p.Call("save", pdk.SaveRequest{Key: "a/b/report.txt", Content: content,
		Metadata: map[string]string{"sha256": sha(content), "job_id": "j1"}, ExpiresAt: pdk.NewTimestamp(expires)}, &saved); err != nil {
		t.Fatal(err)
	}
	check := func(what string, o *pdk.Object) {
		t.Helper()
		if o == nil || o.Key != "a/b/report.txt" || int(o.Size) != len(content) || o.SHA256 != sha(content) ||
			!strings.HasPrefix(o.ContentType, "text/plain") || o.Metadata["job_id"] != "j1" ||
			o.ExpiresAt == nil || !o.ExpiresAt.Equal(expires) || o.CreatedAt == nil {
			t.Errorf("%s: %+v", what, o)
		}
	}
	if saved.Status != pdk.StatusSuccess {
		t.Fatalf("save: %+v", saved)
	}
	check("saved", saved.Object)
	var loaded pdk.LoadResponse
	if err := p.Call("load", pdk.LoadRequest{Key: "a/b/report.txt"}, &loaded); err != nil || !bytes.Equal(loaded.Content, content) {
		t.Fatalf("load: %d bytes, %v", len(loaded.Content), err)
	}
	check("loaded", loaded.Object)

	// Expired: gone for load and list.
	if err := p.Call("save", pdk.SaveRequest{Key: "a/old", Content: []byte("x"), ExpiresAt: pdk.NewTimestamp(time.Now().Add(-time.Second))}, nil); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"a/old", "a/never-saved"} {
		var gone pdk.LoadResponse
		if err := p.Call("load", pdk.LoadRequest{Key: key}, &gone); err != nil || gone.Status != pdk.StatusError || gone.ErrorCode != pdk.StorageNotFound {
			t.Errorf("load %s: %v %+v, want NOT_FOUND", key, err, gone)
		}
	}

	// Pages.
	for i := range 5 {
		if err := p.Call("save", pdk.SaveRequest{Key: fmt.Sprintf("page/%d", i), Content: []byte{byte('0' + i)}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var keys []string
	token, pages := "", 0
	for {
		var list pdk.ListResponse
		if err := p.Call("list", pdk.ListRequest{Prefix: "page/", PageSize: 2, PageToken: token}, &list); err != nil || list.Status != pdk.StatusSuccess {
			t.Fatalf("list: %v %+v", err, list)
		}
		pages++
		for _, o := range list.Objects {
			keys = append(keys, o.Key)
		}
		if token = list.NextPageToken; token == "" {
			break
		}
	}
	if strings.Join(keys, " ") != "page/0 page/1 page/2 page/3 page/4" || pages != 3 {
		t.Errorf("listed %v in %d pages", keys, pages)
	}
	var all pdk.ListResponse
	if err := p.Call("list", pdk.ListRequest{Prefix: "a/"}, &all); err != nil || len(all.Objects) != 1 || all.Objects[0].Key != "a/b/report.txt" {
		t.Errorf("list a/ (an expired object among them): %v %+v", err, all)
	}

	// Deletes are idempotent.
	for i, want := range []bool{true, false} {
		var del pdk.DeleteResponse
		if err := p.Call("delete", pdk.DeleteRequest{Key: "page/0"}, &del); err != nil || del.Status != pdk.StatusSuccess || del.Deleted != want {
			t.Errorf("delete #%d: %v %+v, want deleted=%v", i+1, err, del, want)
		}
	}

	if features.RangedLoad {
		var part pdk.LoadResponse
		if err := p.Call("load", pdk.LoadRequest{Key: "a/b/report.txt", Offset: 10, Length: 20}, &part); err != nil ||
			!bytes.Equal(part.Content, content[10:30]) || int(part.Object.Size) != len(content) {
			t.Errorf("ranged load: %q %v", part.Content, err)
		}
	}

	if features.Multipart {
		p1 := bytes.Repeat([]byte{'m'}, int(features.MinPartBytes))
		p2 := []byte("last part")
		whole := append(append([]byte{}, p1...), p2...)
		var begin pdk.UploadBeginResponse
		if err := p.Call("upload_begin", pdk.UploadBeginRequest{Key: "multi/whole.bin", SHA256: sha(whole), Size: pdk.Int64(len(whole))}, &begin); err != nil || begin.UploadID == "" {
			t.Fatalf("upload_begin: %v %+v", err, begin)
		}
		var parts []pdk.UploadedPart
		for i, b := range [][]byte{p1, p2} {
			var up pdk.UploadPartResponse
			if err := p.Call("upload_part", pdk.UploadPartRequest{Key: "multi/whole.bin", UploadID: begin.UploadID, PartNumber: int32(i + 1), Content: b, SHA256: sha(b)}, &up); err != nil || up.ETag == "" {
				t.Fatalf("upload_part %d: %v %+v", i+1, err, up)
			}
			parts = append(parts, pdk.UploadedPart{PartNumber: int32(i + 1), ETag: up.ETag})
		}
		var done pdk.UploadCompleteResponse
		if err := p.Call("upload_complete", pdk.UploadCompleteRequest{Key: "multi/whole.bin", UploadID: begin.UploadID, Parts: parts}, &done); err != nil ||
			done.Status != pdk.StatusSuccess || int(done.Object.Size) != len(whole) || done.Object.SHA256 != sha(whole) {
			t.Fatalf("upload_complete: %v %+v", err, done)
		}
		if err := p.Call("load", pdk.LoadRequest{Key: "multi/whole.bin"}, &loaded); err != nil || !bytes.Equal(loaded.Content, whole) {
			t.Errorf("multipart object: %d bytes, %v", len(loaded.Content), err)
		}
		// A part whose bytes do not match its sha256 is refused; the upload
		// is aborted, and no part remains.
		if err := p.Call("upload_begin", pdk.UploadBeginRequest{Key: "multi/aborted.bin"}, &begin); err != nil {
			t.Fatal(err)
		}
		var bad pdk.UploadPartResponse
		if err := p.Call("upload_part", pdk.UploadPartRequest{Key: "multi/aborted.bin", UploadID: begin.UploadID, PartNumber: 1, Content: p2, SHA256: sha(p1)}, &bad); err != nil ||
			bad.ErrorCode != pdk.StorageCorrupt {
			t.Errorf("part with a wrong sha256: %v %+v, want CORRUPT", err, bad)
		}
		if err := p.Call("upload_part", pdk.UploadPartRequest{Key: "multi/aborted.bin", UploadID: begin.UploadID, PartNumber: 1, Content: p1}, nil); err != nil {
			t.Fatal(err)
		}
		if n := s.uploads(t); n != 1 {
			t.Errorf("%d uploads in progress, want 1", n)
		}
		for range 2 {
			var ab pdk.UploadAbortResponse
			if err := p.Call("upload_abort", pdk.UploadAbortRequest{Key: "multi/aborted.bin", UploadID: begin.UploadID}, &ab); err != nil || ab.Status != pdk.StatusSuccess {
				t.Errorf("upload_abort: %v %+v", err, ab)
			}
		}
		if n := s.uploads(t); n != 0 {
			t.Errorf("%d uploads left after the abort", n)
		}
	}

	if features.Presign {
		body := []byte("presigned bytes")
		var put pdk.PresignResponse
		if err := p.Call("presign", pdk.PresignRequest{Key: "direct/p.txt", Method: "PUT", TTL: pdk.NewDuration(time.Minute),
			Size: pdk.Int64(len(body)), SHA256: sha(body), ExpiresAt: pdk.NewTimestamp(expires)}, &put); err != nil || put.Status != pdk.StatusSuccess {
			t.Fatalf("presign PUT: %v %+v", err, put)
		}
		if put.ExpiresAt == nil || put.ExpiresAt.After(time.Now().Add(time.Minute+time.Second)) {
			t.Errorf("presigned PUT expires at %v", put.ExpiresAt)
		}
		do := func(r pdk.PresignResponse, b []byte) (int, []byte, http.Header) {
			t.Helper()
			req, err := http.NewRequest(r.Method, r.URL, bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range r.Headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, got, resp.Header
		}
		if code, msg, _ := do(put, []byte("tampered bytes!")); code/100 == 2 {
			t.Errorf("presigned PUT of other bytes: %d %s", code, msg)
		}
		var st pdk.StatResponse
		if err := p.Call("stat", pdk.StatRequest{Key: "direct/p.txt"}, &st); err != nil || st.Status != pdk.StatusSuccess || st.Object != nil {
			t.Errorf("stat after a refused PUT: %v %+v", err, st)
		}
		if code, msg, _ := do(put, body); code/100 != 2 {
			t.Fatalf("presigned PUT: %d %s", code, msg)
		}
		if err := p.Call("stat", pdk.StatRequest{Key: "direct/p.txt"}, &st); err != nil || st.Object == nil ||
			st.Object.SHA256 != sha(body) || int(st.Object.Size) != len(body) || st.Object.ExpiresAt == nil || !st.Object.ExpiresAt.Equal(expires) {
			t.Errorf("stat: %v %+v", err, st.Object)
		}
		var get pdk.PresignResponse
		if err := p.Call("presign", pdk.PresignRequest{Key: "direct/p.txt", Method: "GET", TTL: pdk.NewDuration(time.Minute), Filename: "p.txt"}, &get); err != nil {
			t.Fatal(err)
		}
		if code, got, h := do(get, nil); code != 200 || !bytes.Equal(got, body) || !strings.Contains(h.Get("Content-Disposition"), "p.txt") {
			t.Errorf("presigned GET: %d %q %v", code, got, h)
		}
		var bad pdk.PresignResponse
		if err := p.Call("presign", pdk.PresignRequest{Key: "direct/p.txt", Method: "PUT", TTL: pdk.NewDuration(time.Minute)}, &bad); err != nil || bad.ErrorCode != pdk.StorageInvalid {
			t.Errorf("presigned PUT without a sha256: %v %+v, want INVALID", err, bad)
		}
	}
}

// TestS3StoreRefusals: wrong credentials, a missing bucket and a store
// that is down each give their own typed reason; a presigned URL may only
// lead to a granted host; the credentials appear in no answer and no log.
func TestS3StoreRefusals(t *testing.T) {
	var logs safeBuffer
	logger := newTextLogger(&logs)
	p, srv := s3Store(t, logger, nil)
	var saved pdk.SaveResponse
	if err := p.Call("save", pdk.SaveRequest{Key: "k", Content: []byte("v")}, &saved); err != nil || saved.Status != pdk.StatusSuccess {
		t.Fatalf("save: %v %+v", err, saved)
	}
	answers := []string{fmt.Sprint(saved)}

	wrong, _ := s3Store(t, logger, func(cfg map[string]string, _ *[]string) { cfg["secret_access_key"] = "not-" + srv.SecretKey })
	var denied pdk.SaveResponse
	if err := wrong.Call("save", pdk.SaveRequest{Key: "k", Content: []byte("v")}, &denied); err != nil ||
		denied.ErrorCode != pdk.StorageDenied || !strings.Contains(denied.Messages[0].Text, "SignatureDoesNotMatch") {
		t.Errorf("wrong secret: %v %+v", err, denied)
	}
	answers = append(answers, fmt.Sprint(denied))

	nobucket, _ := s3Store(t, logger, func(cfg map[string]string, _ *[]string) { cfg["bucket"] = "not-there" })
	var missing pdk.SaveResponse
	if err := nobucket.Call("save", pdk.SaveRequest{Key: "k", Content: []byte("v")}, &missing); err != nil ||
		missing.ErrorCode != pdk.StorageMisconfigured || !strings.Contains(missing.Messages[0].Text, "NoSuchBucket") {
		t.Errorf("missing bucket: %v %+v", err, missing)
	}
	answers = append(answers, fmt.Sprint(missing))

	// A presigned URL leads to the endpoint: refused when that host is not
	// granted (the plugin makes no request to presign).
	ungranted, _ := s3Store(t, logger, func(_ map[string]string, hosts *[]string) { *hosts = []string{"localhost"} })
	face, err := ungranted.Manager.GetStoragePlugin(ungranted.Name())
	if err != nil {
		t.Fatal(err)
	}
	_, err = face.Presign(t.Context(), &pluginv1.PresignRequest{Key: "k", Method: "GET", Ttl: durationpb.New(time.Minute)})
	if !errors.Is(err, host.ErrHostNotGranted) || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("presigned URL to an ungranted host: %v", err)
	}

	srv.Down()
	err = p.Call("load", pdk.LoadRequest{Key: "k"}, nil)
	if !errors.Is(err, host.ErrUnreachable) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("store down: %v, want unreachable (connection refused)", err)
	}
	answers = append(answers, err.Error())
	srv.Up(t)
	var back pdk.LoadResponse
	if err := p.Call("load", pdk.LoadRequest{Key: "k"}, &back); err != nil || string(back.Content) != "v" {
		t.Errorf("store back: %v %q", err, back.Content)
	}

	for _, secret := range []string{srv.SecretKey} {
		for _, a := range answers {
			if strings.Contains(a, secret) {
				t.Errorf("an answer holds the secret: %s", a)
			}
		}
		if strings.Contains(logs.String(), secret) {
			t.Error("the logs hold the secret")
		}
	}
}
