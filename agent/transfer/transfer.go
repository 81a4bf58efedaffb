// Package transfer moves one object's bytes straight to or from an object
// store, through a presigned request the server handed out
// (agentv1.PresignedRequest): artifacts today, cache entries next. The
// request is made as given (its headers are signed), and a download is
// checked against the size and sha256 the server recorded.
//
// A presigned URL holds a credential id and a signature: neither the URL's
// query nor the store's error document is ever put in an error.
package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
)

// Client returns an HTTP client for transfers: large buffers, no overall
// timeout (objects may be large; the context bounds a transfer), and a
// bound on the wait for an answer.
func Client() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.WriteBufferSize, t.ReadBufferSize = 256<<10, 256<<10
	t.ResponseHeaderTimeout = 2 * time.Minute
	// The object's own bytes, as stored and hashed: no transparent gzip.
	t.DisableCompression = true
	return &http.Client{Transport: t}
}

// Error is a transfer that failed.
type Error struct {
	Op string // "upload" or "download"
	// Where is the URL without its query (the object's address).
	Where string
	// Status is the HTTP status, 0 when no answer came.
	Status int
	// Code and Message are the store's (an S3-style error document), when
	// it sent them.
	Code, Message string
	// Err is why no answer came, or what went wrong after it.
	Err error
}

func (e *Error) Error() string {
	switch {
	case e.Status == 0 && e.Err != nil:
		return fmt.Sprintf("%s to %s: %v", e.Op, e.Where, e.Err)
	case e.Code != "":
		msg := e.Code
		if e.Message != "" {
			msg += ": " + e.Message
		}
		return fmt.Sprintf("the store refused the %s: %s (HTTP %d)", e.Op, msg, e.Status)
	case e.Message != "":
		return fmt.Sprintf("the store refused the %s: HTTP %d: %s", e.Op, e.Status, e.Message)
	case e.Err != nil:
		return fmt.Sprintf("%s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("the store refused the %s: HTTP %d", e.Op, e.Status)
}

func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether trying again, with a fresh request, may work:
// no answer came, or the store failed on its side (5xx, 429), or the
// request expired before it was made.
func (e *Error) Temporary() bool {
	return e.Status == 0 && !errors.Is(e.Err, ErrDigest) || e.Status >= 500 || e.Status == http.StatusTooManyRequests
}

// ErrDigest: the bytes downloaded are not the ones recorded.
var ErrDigest = errors.New("the bytes do not match the recorded size and sha256")

func where(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the store"
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u.String()
}

// noAnswer wraps a failed request without its URL (net/http puts the whole
// URL, query and all, in its errors).
func noAnswer(op, raw string, err error) *Error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &Error{Op: op, Where: where(raw), Err: err}
}

// refusal reads a failed answer: the store's error code and message when
// it sent an error document, else the start of the body.
func refusal(op, raw string, resp *http.Response) *Error {
	e := &Error{Op: op, Where: where(raw), Status: resp.StatusCode}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var doc struct {
		XMLName xml.Name `xml:"Error"`
		Code    string   `xml:"Code"`
		Message string   `xml:"Message"`
	}
	switch {
	case xml.Unmarshal(body, &doc) == nil:
		e.Code, e.Message = doc.Code, strings.TrimSpace(doc.Message)
	case bytes.HasPrefix(bytes.TrimSpace(body), []byte("<")):
		// Some other document: it may echo the request; leave it out.
	default:
		e.Message = strings.TrimSpace(string(body))
	}
	if len(e.Message) > 300 {
		e.Message = e.Message[:300] + "…"
	}
	return e
}

func newRequest(ctx context.Context, r *agentv1.PresignedRequest, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, r.GetMethod(), r.GetUrl(), body)
	if err != nil {
		return nil, &Error{Op: strings.ToLower(r.GetMethod()), Where: where(r.GetUrl()), Err: errors.New("the server handed out a malformed request")}
	}
	for k, v := range r.GetHeaders() {
		req.Header.Set(k, v)
	}
	return req, nil
}

// Put sends size bytes of body with the presigned request r (a PUT).
func Put(ctx context.Context, c *http.Client, r *agentv1.PresignedRequest, body io.Reader, size int64) error {
	if r.GetMethod() != http.MethodPut {
		return &Error{Op: "upload", Where: where(r.GetUrl()), Err: fmt.Errorf("want a PUT, got %q", r.GetMethod())}
	}
	req, err := newRequest(ctx, r, io.NopCloser(body))
	if err != nil {
		return err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	resp, err := c.Do(req)
	if err != nil {
		return noAnswer("upload", r.GetUrl(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return refusal("upload", r.GetUrl(), resp)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return nil
}

// Get fetches the object of the presigned request r (a GET) into w and
// checks that it is size bytes (-1: any size) hashing to sha256Hex (empty:
// not checked); a mismatch is an *Error wrapping ErrDigest. It returns the
// bytes written.
func Get(ctx context.Context, c *http.Client, r *agentv1.PresignedRequest, w io.Writer, size int64, sha256Hex string) (int64, error) {
	if r.GetMethod() != http.MethodGet {
		return 0, &Error{Op: "download", Where: where(r.GetUrl()), Err: fmt.Errorf("want a GET, got %q", r.GetMethod())}
	}
	req, err := newRequest(ctx, r, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, noAnswer("download", r.GetUrl(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, refusal("download", r.GetUrl(), resp)
	}
	var src io.Reader = resp.Body
	if size >= 0 {
		src = io.LimitReader(resp.Body, size+1)
	}
	n, sum, err := copyHashing(w, src)
	if err != nil {
		return n, noAnswer("download", r.GetUrl(), err)
	}
	if size >= 0 && n != size {
		return n, &Error{Op: "download", Where: where(r.GetUrl()), Status: resp.StatusCode,
			Err: fmt.Errorf("%w: %d bytes, want %d", ErrDigest, n, size)}
	}
	if got := hex.EncodeToString(sum); sha256Hex != "" && got != sha256Hex {
		return n, &Error{Op: "download", Where: where(r.GetUrl()), Status: resp.StatusCode,
			Err: fmt.Errorf("%w: sha256 %s, want %s", ErrDigest, got, sha256Hex)}
	}
	return n, nil
}

// copyHashing copies src to w in 1 MiB pieces and returns the sha256 of
// what it copied. Hashing runs beside the copy, one piece behind, so that
// a download is not slowed by its check.
func copyHashing(w io.Writer, src io.Reader) (int64, []byte, error) {
	const pieces, pieceSize = 4, 1 << 20
	free := make(chan []byte, pieces)
	for range pieces {
		free <- make([]byte, pieceSize)
	}
	full := make(chan []byte, pieces)
	sum := make(chan []byte, 1)
	go func() {
		h := sha256.New()
		for b := range full {
			h.Write(b)
			free <- b[:cap(b)]
		}
		sum <- h.Sum(nil)
	}()
	var n int64
	var err error
	for err == nil {
		buf := <-free
		var k int
		k, err = io.ReadFull(src, buf)
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				err = werr
			}
			n += int64(k)
		}
		full <- buf[:k]
	}
	close(full)
	digest := <-sum
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil
	}
	return n, digest, err
}
