package s3_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-arcade/arcade/internal/s3test"
	"github.com/go-arcade/arcade/plugins/s3-store/s3"
)

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func kindOf(err error) s3.Kind {
	var e *s3.Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return -1
}

func TestConfig(t *testing.T) {
	get := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	c, err := s3.ParseConfig(get(map[string]string{"endpoint": "https://s3.example.com:9000", "bucket": "my-bucket",
		"prefix": "ci/", "addressing": "virtual", "access_key_id": "AK", "secret_access_key": "SECRET"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ObjectURL("a b/ü.txt").String(); got != "https://my-bucket.s3.example.com:9000/ci/a%20b/%C3%BC.txt" {
		t.Errorf("virtual-host URL %s", got)
	}
	c.Virtual = false
	if got := c.ObjectURL("x+y").String(); got != "https://s3.example.com:9000/my-bucket/ci/x%2By" {
		t.Errorf("path-style URL %s", got)
	}
	_, err = s3.ParseConfig(get(map[string]string{"endpoint": "ftp://x/y", "bucket": "Bad_Bucket", "addressing": "sideways",
		"access_key_id": "AK", "secret_access_key": "THE-SECRET-VALUE"}))
	for _, want := range []string{"endpoint", "bucket", "addressing"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad config: %v, want it to name %s", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "THE-SECRET-VALUE") {
		t.Errorf("the error shows the secret: %v", err)
	}
	if _, err := s3.ParseConfig(get(map[string]string{"endpoint": "http://h", "bucket": "abc"})); err == nil || !strings.Contains(err.Error(), "secret_access_key") {
		t.Errorf("missing credentials: %v", err)
	}
}

func TestCheckKey(t *testing.T) {
	for _, k := range []string{"", "/a", "a/", "a//b", "a/../b", "a/./b", "a\\b", "a\x00b", strings.Repeat("k", 901)} {
		if s3.CheckKey(k) == nil {
			t.Errorf("key %q accepted", k)
		}
	}
	for _, k := range []string{"a", "artifacts/j/1/dist/app bin+1.tar.gz", "logs/ü.pack"} {
		if err := s3.CheckKey(k); err != nil {
			t.Errorf("key %q: %v", k, err)
		}
	}
}

// TestClient runs the client against a real S3 server: objects keep size,
// sha256, content type, metadata and expiry; ranges; listings in pages;
// idempotent deletes; multipart uploads and their abort; presigned PUT and
// GET, with the digest enforced and the expiry too; and the refusals of
// wrong credentials and a missing bucket, each with its kind.
func TestClient(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "arcade")
	c := srv.Client("arcade")
	c.Prefix = "pre/"

	data := bytes.Repeat([]byte("0123456789abcdef"), (18<<20)/16+3) // 18 MiB + 48 bytes: three GETs
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	obj, err := c.Put("dir/big file.bin", data, hexSum(data), s3.PutOptions{ContentType: "application/x-test",
		Metadata: map[string]string{"job_id": "j1"}, Expires: exp})
	if err != nil {
		t.Fatal(err)
	}
	if obj.Size != int64(len(data)) || obj.SHA256 != hexSum(data) {
		t.Fatalf("put: %+v", obj)
	}
	head, err := c.Head("dir/big file.bin")
	if err != nil || head == nil {
		t.Fatalf("head: %v %v", head, err)
	}
	if head.Size != int64(len(data)) || head.SHA256 != hexSum(data) || head.ContentType != "application/x-test" ||
		head.Metadata["job_id"] != "j1" || !head.Expires.Equal(exp) || head.Modified.IsZero() {
		t.Errorf("head: %+v", head)
	}
	got, whole, err := c.Get("dir/big file.bin", 0, 0)
	if err != nil || !bytes.Equal(whole, data) || got.Size != int64(len(data)) {
		t.Fatalf("get whole: %d bytes, %v", len(whole), err)
	}
	_, part, err := c.Get("dir/big file.bin", 9<<20+5, 100)
	if err != nil || !bytes.Equal(part, data[9<<20+5:9<<20+105]) {
		t.Errorf("get range: %q %v", part, err)
	}
	_, tailBytes, err := c.Get("dir/big file.bin", int64(len(data)-10), 0)
	if err != nil || !bytes.Equal(tailBytes, data[len(data)-10:]) {
		t.Errorf("get tail: %q %v", tailBytes, err)
	}
	if keys := srv.Keys(t, "arcade", ""); len(keys) != 1 || keys[0] != "pre/dir/big file.bin" {
		t.Errorf("keys in the bucket: %v", keys)
	}

	// An empty object; a tampered body is refused and changes nothing.
	if _, err := c.Put("empty", nil, "", s3.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if o, b, err := c.Get("empty", 0, 0); err != nil || len(b) != 0 || o.Size != 0 || o.SHA256 != hexSum(nil) {
		t.Errorf("empty object: %+v %q %v", o, b, err)
	}
	if _, err := c.Put("empty", []byte("not empty"), hexSum(nil), s3.PutOptions{}); kindOf(err) != s3.Corrupt {
		t.Errorf("put with a wrong digest: %v, want Corrupt", err)
	}

	// Expired: gone for head, get and list.
	if _, err := c.Put("old", []byte("x"), "", s3.PutOptions{Expires: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if o, err := c.Head("old"); o != nil || err != nil {
		t.Errorf("expired head: %v %v", o, err)
	}
	if _, _, err := c.Get("old", 0, 0); kindOf(err) != s3.NotFound {
		t.Errorf("expired get: %v", err)
	}
	if _, _, err := c.Get("nothing", 0, 0); kindOf(err) != s3.NotFound {
		t.Errorf("missing get: %v", err)
	}

	// Listing pages.
	for i := range 5 {
		if _, err := c.Put(fmt.Sprintf("list/%d", i), []byte{byte(i)}, "", s3.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var listed []string
	for token, pages := "", 0; ; pages++ {
		objs, next, err := c.List("list/", token, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			listed = append(listed, o.Key)
			if o.SHA256 == "" || o.Size != 1 {
				t.Errorf("listed %+v", o)
			}
		}
		if next == "" {
			if pages != 2 {
				t.Errorf("%d pages, want 3", pages+1)
			}
			break
		}
		token = next
	}
	if strings.Join(listed, ",") != "list/0,list/1,list/2,list/3,list/4" {
		t.Errorf("listed %v", listed)
	}

	// Deletes are idempotent and say whether the object was there.
	if was, err := c.Delete("list/0"); err != nil || !was {
		t.Errorf("delete: %v %v", was, err)
	}
	if was, err := c.Delete("list/0"); err != nil || was {
		t.Errorf("second delete: %v %v", was, err)
	}

	// Multipart: two parts; then an aborted upload leaves no parts.
	p1 := bytes.Repeat([]byte{'a'}, s3.MinPartBytes)
	p2 := []byte("the end")
	whole2 := append(append([]byte{}, p1...), p2...)
	id, err := c.CreateMultipart("multi", hexSum(whole2), s3.PutOptions{ContentType: "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	var parts []s3.Part
	for i, p := range [][]byte{p1, p2} {
		etag, err := c.UploadPart("multi", id, i+1, p, hexSum(p))
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, s3.Part{Number: i + 1, ETag: etag})
	}
	if _, err := c.UploadPart("multi", id, 3, p2, hexSum(p1)); kindOf(err) != s3.Corrupt {
		t.Errorf("part with a wrong digest: %v, want Corrupt", err)
	}
	mo, err := c.CompleteMultipart("multi", id, parts)
	if err != nil {
		t.Fatal(err)
	}
	if mo.Size != int64(len(whole2)) || mo.SHA256 != hexSum(whole2) || mo.ContentType != "text/plain" || !strings.Contains(mo.ETag, "-2") {
		t.Errorf("multipart object: %+v", mo)
	}
	if _, b, err := c.Get("multi", 0, 0); err != nil || !bytes.Equal(b, whole2) {
		t.Errorf("multipart content: %d bytes, %v", len(b), err)
	}
	id, err = c.CreateMultipart("aborted", hexSum(p1), s3.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadPart("aborted", id, 1, p1, ""); err != nil {
		t.Fatal(err)
	}
	if ups, err := c.ListMultipartUploads(""); err != nil || len(ups) != 1 || ups[0].Key != "aborted" {
		t.Errorf("uploads in progress: %v %v", ups, err)
	}
	if err := c.AbortMultipart("aborted", id); err != nil {
		t.Fatal(err)
	}
	if err := c.AbortMultipart("aborted", id); err != nil {
		t.Errorf("second abort: %v", err)
	}
	if ups, err := c.ListMultipartUploads(""); err != nil || len(ups) != 0 {
		t.Errorf("uploads after the abort: %v %v", ups, err)
	}

	// Presigned PUT and GET with plain net/http.
	body := []byte("straight to the store")
	put, err := c.PresignPut("direct/x.txt", int64(len(body)), hexSum(body), s3.PutOptions{ContentType: "text/plain"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(put.URL, srv.SecretKey) {
		t.Fatal("presigned URL holds the secret")
	}
	send := func(p *s3.Presigned, b []byte) *s3.Response {
		t.Helper()
		resp, err := s3test.HTTP(&s3.Request{Method: p.Method, URL: p.URL, Header: p.Header, Body: b})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := send(put, []byte("something else entirely")); r.Status != http.StatusBadRequest || !bytes.Contains(r.Body, []byte("BadDigest")) {
		t.Errorf("presigned PUT of other bytes: %d %s", r.Status, r.Body)
	}
	if o, _ := c.Head("direct/x.txt"); o != nil {
		t.Errorf("refused PUT left %+v", o)
	}
	if r := send(put, body); r.Status != http.StatusOK {
		t.Fatalf("presigned PUT: %d %s", r.Status, r.Body)
	}
	if o, err := c.Head("direct/x.txt"); err != nil || o == nil || o.SHA256 != hexSum(body) || o.Size != int64(len(body)) || o.ContentType != "text/plain" {
		t.Errorf("presigned object: %+v %v", o, err)
	}
	get, err := c.PresignGet("direct/x.txt", "x (1).txt", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r := send(get, nil)
	if r.Status != http.StatusOK || !bytes.Equal(r.Body, body) || !strings.Contains(r.Header["content-disposition"], `filename="x (1).txt"`) {
		t.Errorf("presigned GET: %d %q %v", r.Status, r.Body, r.Header)
	}
	c.Now = func() time.Time { return time.Now().Add(-time.Hour) }
	old, err := c.PresignGet("direct/x.txt", "", time.Minute)
	c.Now = nil
	if err != nil {
		t.Fatal(err)
	}
	if r := send(old, nil); r.Status != http.StatusForbidden || !bytes.Contains(r.Body, []byte("expired")) {
		t.Errorf("expired presigned GET: %d %s", r.Status, r.Body)
	}
	if _, err := c.PresignGet("direct/x.txt", "", 8*24*time.Hour); kindOf(err) != s3.Invalid {
		t.Errorf("a week and a day: %v", err)
	}

	// Refusals, each with its kind and a reason that names no secret.
	bad := srv.Client("arcade")
	bad.Credentials.SecretAccessKey = "wrong-secret"
	_, err = bad.Put("k", []byte("v"), "", s3.PutOptions{})
	if kindOf(err) != s3.Denied || !strings.Contains(err.Error(), "SignatureDoesNotMatch") || strings.Contains(err.Error(), srv.AccessKey) {
		t.Errorf("wrong secret: %v", err)
	}
	bad = srv.Client("arcade")
	bad.Credentials.AccessKeyID = "NOSUCHKEY"
	if _, _, err := bad.Get("k", 0, 0); kindOf(err) != s3.Denied || !strings.Contains(err.Error(), "access_key_id") {
		t.Errorf("unknown access key: %v", err)
	}
	missing := srv.Client("no-such-bucket")
	_, err = missing.Put("k", []byte("v"), "", s3.PutOptions{})
	if kindOf(err) != s3.Misconfigured || !strings.Contains(err.Error(), "NoSuchBucket") {
		t.Errorf("missing bucket: %v", err)
	}
}
