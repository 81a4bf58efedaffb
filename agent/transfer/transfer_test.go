package transfer_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-arcade/arcade/agent/transfer"
	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
)

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// store is an HTTP server that keeps one object, answers S3-style errors,
// and echoes a secret in them as S3 does (the credential id).
func store(t *testing.T) (*httptest.Server, *[]byte) {
	var kept []byte
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Query().Get("X-Amz-Signature") != "good":
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `<?xml version="1.0"?><Error><Code>SignatureDoesNotMatch</Code><Message>no match</Message><AWSAccessKeyId>AKSECRETID</AWSAccessKeyId></Error>`)
		case r.URL.Query().Get("fail") == "500":
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "busy")
		case r.Method == http.MethodPut:
			if r.Header.Get("X-Signed") != "yes" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			kept, _ = io.ReadAll(r.Body)
		case r.Method == http.MethodGet:
			w.Write(kept)
		}
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &kept
}

func TestPutGet(t *testing.T) {
	srv, kept := store(t)
	c := transfer.Client()
	ctx := t.Context()
	body := bytes.Repeat([]byte("object "), 100000)
	put := &agentv1.PresignedRequest{Method: "PUT", Url: srv.URL + "/b/k?X-Amz-Signature=good", Headers: map[string]string{"X-Signed": "yes"}}
	if err := transfer.Put(ctx, c, put, bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(*kept, body) {
		t.Fatalf("stored %d bytes", len(*kept))
	}
	get := &agentv1.PresignedRequest{Method: "GET", Url: srv.URL + "/b/k?X-Amz-Signature=good"}
	var got bytes.Buffer
	if n, err := transfer.Get(ctx, c, get, &got, int64(len(body)), hexSum(body)); err != nil || n != int64(len(body)) || !bytes.Equal(got.Bytes(), body) {
		t.Fatalf("get: %d %v", n, err)
	}
	// Other bytes than recorded.
	_, err := transfer.Get(ctx, c, get, io.Discard, int64(len(body)), hexSum([]byte("other")))
	var te *transfer.Error
	if !errors.Is(err, transfer.ErrDigest) || !errors.As(err, &te) || te.Temporary() {
		t.Errorf("digest mismatch: %v", err)
	}
	if _, err := transfer.Get(ctx, c, get, io.Discard, 10, ""); !errors.Is(err, transfer.ErrDigest) {
		t.Errorf("size mismatch: %v", err)
	}
}

// TestErrors: a refusal names the store's code and message, never the
// query of the URL or what the store echoes of the credentials; a failure
// on the store's side and no answer at all are temporary, a refusal is not.
func TestErrors(t *testing.T) {
	srv, _ := store(t)
	c := transfer.Client()
	ctx := t.Context()
	bad := &agentv1.PresignedRequest{Method: "GET", Url: srv.URL + "/b/k?X-Amz-Credential=AKSECRETID&X-Amz-Signature=bad"}
	_, err := transfer.Get(ctx, c, bad, io.Discard, -1, "")
	var te *transfer.Error
	if !errors.As(err, &te) || te.Temporary() || te.Code != "SignatureDoesNotMatch" || te.Status != 403 {
		t.Fatalf("refusal: %#v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "SignatureDoesNotMatch: no match (HTTP 403)") || strings.Contains(msg, "AKSECRETID") {
		t.Errorf("refusal reads %q", msg)
	}
	busy := &agentv1.PresignedRequest{Method: "PUT", Url: srv.URL + "/b/k?X-Amz-Signature=good&fail=500", Headers: map[string]string{"X-Signed": "yes"}}
	if err := transfer.Put(ctx, c, busy, strings.NewReader("x"), 1); !errors.As(err, &te) || !te.Temporary() || !strings.Contains(err.Error(), "busy") {
		t.Errorf("store failing: %v", err)
	}
	closed := srv.URL
	srv.Close()
	gone := &agentv1.PresignedRequest{Method: "PUT", Url: closed + "/b/k?X-Amz-Credential=AKSECRETID&X-Amz-Signature=good"}
	err = transfer.Put(ctx, c, gone, strings.NewReader("x"), 1)
	if !errors.As(err, &te) || !te.Temporary() || strings.Contains(err.Error(), "AKSECRETID") || !strings.Contains(err.Error(), "/b/k") {
		t.Errorf("no answer: %v", err)
	}
	t.Logf("no answer: %v", err)
}
