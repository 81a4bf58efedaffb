package s3

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-arcade/arcade/plugins/s3-store/sigv4"
)

// Request is an HTTP request as the host makes it.
type Request struct {
	Method string
	URL    string
	Header map[string]string
	Body   []byte
}

// Response is the host's answer; header names are lower case.
type Response struct {
	Status int
	Header map[string]string
	Body   []byte
}

// Doer makes one HTTP request. An error means no answer came (the host's
// own HTTP ends the plugin's call instead).
type Doer func(*Request) (*Response, error)

// MaxGet is the most bytes one GET asks for: the host bounds what one
// answer may carry.
const MaxGet = 8 << 20

// Part size bounds of S3 multipart uploads, and the largest single PUT.
const (
	MinPartBytes = 5 << 20
	MaxPartBytes = 5 << 30
	MaxPutBytes  = 5 << 30
	MaxParts     = 10000
)

// Metadata header names the plugin keeps beside user metadata.
const (
	metaPrefix  = "x-amz-meta-"
	metaSHA256  = "sha256"
	metaExpires = "arcade-expires-at"
)

// Client talks to one bucket.
type Client struct {
	Config
	Do  Doer
	Now func() time.Time
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) signer() sigv4.Signer {
	return sigv4.Signer{Credentials: c.Credentials, Region: c.Region}
}

// Object describes a stored object.
type Object struct {
	Key         string // without the prefix
	Size        int64
	SHA256      string // hex
	ContentType string
	// Metadata is the user metadata (the sha256 included).
	Metadata map[string]string
	Modified time.Time
	Expires  time.Time // zero: never
	ETag     string
}

// PutOptions are what an object keeps beside its content.
type PutOptions struct {
	ContentType string
	Metadata    map[string]string
	Expires     time.Time
}

// headers returns the object headers of o: content type and metadata, the
// sha256 and expiry among them.
func (o PutOptions) headers(sha string) (map[string]string, error) {
	h := map[string]string{}
	ct := o.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h["Content-Type"] = ct
	for k, v := range o.Metadata {
		k = strings.ToLower(k)
		if !validMetaKey(k) || k == metaExpires {
			return nil, fmt.Errorf("metadata key %q: want letters, digits, - and _", k)
		}
		if !printableASCII(v) {
			return nil, fmt.Errorf("metadata %s: the value must be printable ASCII", k)
		}
		h[metaPrefix+k] = v
	}
	if sha != "" {
		h[metaPrefix+metaSHA256] = sha
	}
	if !o.Expires.IsZero() {
		h[metaPrefix+metaExpires] = o.Expires.UTC().Format(time.RFC3339)
	}
	return h, nil
}

func validMetaKey(k string) bool {
	if k == "" || len(k) > 128 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// CheckKey refuses keys S3 or the posix stores behind S3 gateways would
// treat oddly: empty, absolute, with empty, "." or ".." segments, a
// backslash or a control character, or longer than 900 bytes.
func CheckKey(key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	if len(key) > 900 {
		return fmt.Errorf("key of %d bytes is too long (at most 900)", len(key))
	}
	if strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") || strings.ContainsAny(key, "\\") {
		return fmt.Errorf("invalid key %q", key)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] == 0x7f {
			return fmt.Errorf("invalid key %q (control character)", key)
		}
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("invalid key %q (empty, . or .. segment)", key)
		}
	}
	return nil
}

// Sign returns header with the signature headers of a request added.
func (c *Client) Sign(method string, u *url.URL, header map[string]string, payloadHash string) map[string]string {
	h := map[string]string{}
	for k, v := range header {
		h[k] = v
	}
	for k, v := range c.signer().Sign(method, u, header, payloadHash, c.now()) {
		h[k] = v
	}
	return h
}

// send signs and makes a request; an answer that is not 2xx is an *Error.
func (c *Client) send(op, key, method string, u *url.URL, header map[string]string, body []byte, payloadHash string) (*Response, error) {
	h := c.Sign(method, u, header, payloadHash)
	resp, err := c.Do(&Request{Method: method, URL: u.String(), Header: h, Body: body})
	if err != nil {
		return nil, &Error{Kind: Unavailable, Op: op, Key: key, Message: err.Error()}
	}
	if resp.Status < 200 || resp.Status > 299 {
		return resp, parseError(op, key, resp.Status, resp.Body)
	}
	return resp, nil
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Put stores body as key; sha is its hex sha256 when the caller has it
// (S3 checks the body against it), else it is computed.
func (c *Client) Put(key string, body []byte, sha string, o PutOptions) (*Object, error) {
	sha = strings.ToLower(sha)
	if sha == "" {
		sha = hexSHA256(body)
	}
	h, err := o.headers(sha)
	if err != nil {
		return nil, &Error{Kind: Invalid, Op: "put", Key: key, Message: err.Error()}
	}
	h["x-amz-checksum-sha256"] = b64(sha)
	resp, err := c.send("put", key, "PUT", c.ObjectURL(key), h, body, sha)
	if err != nil {
		return nil, err
	}
	obj := &Object{Key: key, Size: int64(len(body)), SHA256: sha, ContentType: h["Content-Type"],
		Metadata: userMetadata(h), Modified: c.now().UTC().Truncate(time.Second), Expires: o.Expires, ETag: resp.Header["etag"]}
	return obj, nil
}

func b64(hexSum string) string {
	b, err := hex.DecodeString(hexSum)
	if err != nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
}

// userMetadata picks the user metadata out of headers (names in any
// case).
func userMetadata(h map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		k = strings.ToLower(k)
		if name, ok := strings.CutPrefix(k, metaPrefix); ok && name != metaExpires {
			out[name] = v
		}
	}
	return out
}

// objectFrom describes key from the headers of a HEAD or GET answer.
func objectFrom(key string, h map[string]string) *Object {
	o := &Object{Key: key, ContentType: h["content-type"], Metadata: userMetadata(h), ETag: h["etag"]}
	o.Size, _ = strconv.ParseInt(h["content-length"], 10, 64)
	if cr := h["content-range"]; cr != "" {
		if i := strings.LastIndexByte(cr, '/'); i >= 0 {
			o.Size, _ = strconv.ParseInt(cr[i+1:], 10, 64)
		}
	}
	o.SHA256 = o.Metadata[metaSHA256]
	// The store's own checksum, when it keeps one, is the one it verified.
	if cs := h["x-amz-checksum-sha256"]; cs != "" {
		if b, err := base64.StdEncoding.DecodeString(cs); err == nil && len(b) == sha256.Size {
			o.SHA256 = hex.EncodeToString(b)
		}
	}
	if t, err := time.Parse(time.RFC1123, h["last-modified"]); err == nil {
		o.Modified = t.UTC()
	}
	if t, err := time.Parse(time.RFC3339, h[metaPrefix+metaExpires]); err == nil {
		o.Expires = t.UTC()
	}
	return o
}

func (c *Client) expired(o *Object) bool {
	return !o.Expires.IsZero() && !o.Expires.After(c.now())
}

// Head describes key; nil when there is no such object or it expired.
func (c *Client) Head(key string) (*Object, error) {
	h := map[string]string{"x-amz-checksum-mode": "ENABLED"}
	resp, err := c.send("head", key, "HEAD", c.ObjectURL(key), h, nil, sigv4.EmptySHA256)
	var e *Error
	if errors.As(err, &e) && e.Status == 404 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	o := objectFrom(key, resp.Header)
	if c.expired(o) {
		return nil, nil
	}
	return o, nil
}

// Get returns the description of key and its bytes from off on, at most n
// of them (n 0: to the end), in requests of at most MaxGet bytes. A
// missing or expired object is a NotFound *Error.
func (c *Client) Get(key string, off, n int64) (*Object, []byte, error) {
	if off < 0 || n < 0 {
		return nil, nil, &Error{Kind: Invalid, Op: "get", Key: key, Message: "negative offset or length"}
	}
	var obj *Object
	var out []byte
	for {
		want := int64(MaxGet)
		if n > 0 {
			want = min(want, n-int64(len(out)))
		}
		start := off + int64(len(out))
		h := map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", start, start+want-1)}
		resp, err := c.send("get", key, "GET", c.ObjectURL(key), h, nil, sigv4.EmptySHA256)
		var e *Error
		if errors.As(err, &e) && e.Status == 416 && obj == nil {
			// Nothing at off: an empty object, or off at its end.
			o, herr := c.Head(key)
			if herr != nil || o == nil || off < o.Size {
				if herr == nil {
					herr = err
					if o == nil {
						herr = &Error{Kind: NotFound, Op: "get", Key: key, Status: 404, Code: "NoSuchKey"}
					}
				}
				return nil, nil, herr
			}
			return o, nil, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if obj == nil {
			obj = objectFrom(key, resp.Header)
			if c.expired(obj) {
				return nil, nil, &Error{Kind: NotFound, Op: "get", Key: key, Status: 404, Code: "NoSuchKey", Message: "the object expired"}
			}
			size := max(obj.Size-off, 0)
			if n > 0 {
				size = min(size, n)
			}
			out = make([]byte, 0, min(size, 1<<30))
		}
		out = append(out, resp.Body...)
		end := obj.Size
		if n > 0 {
			end = min(end, off+n)
		}
		if off+int64(len(out)) >= end || len(resp.Body) == 0 {
			return obj, out, nil
		}
	}
}

// Delete removes key and reports whether it was there; a missing key is no
// error.
func (c *Client) Delete(key string) (bool, error) {
	o, err := c.Head(key)
	if err != nil {
		return false, err
	}
	if _, err := c.send("delete", key, "DELETE", c.ObjectURL(key), nil, nil, sigv4.EmptySHA256); err != nil {
		var e *Error
		if errors.As(err, &e) && e.Kind == NotFound && e.Code != "NoSuchBucket" {
			return false, nil
		}
		return false, err
	}
	return o != nil, nil
}

type listResult struct {
	Contents []struct {
		Key string `xml:"Key"`
	} `xml:"Contents"`
	IsTruncated           bool   `xml:"IsTruncated"`
	NextContinuationToken string `xml:"NextContinuationToken"`
}

// ListKeys returns up to max keys that start with prefix, after the page
// token, and the next page's token ("" after the last page).
func (c *Client) ListKeys(prefix, token string, maxKeys int) ([]string, string, error) {
	u := c.BucketURL()
	q := url.Values{"list-type": {"2"}, "prefix": {c.Prefix + prefix}, "max-keys": {strconv.Itoa(maxKeys)}}
	if token != "" {
		q.Set("continuation-token", token)
	}
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	resp, err := c.send("list", prefix, "GET", u, nil, nil, sigv4.EmptySHA256)
	if err != nil {
		return nil, "", err
	}
	var res listResult
	if err := xml.Unmarshal(resp.Body, &res); err != nil {
		return nil, "", &Error{Kind: Failed, Op: "list", Key: prefix, Status: resp.Status, Message: "unreadable listing: " + err.Error()}
	}
	var keys []string
	for _, item := range res.Contents {
		if key, ok := strings.CutPrefix(item.Key, c.Prefix); ok {
			keys = append(keys, key)
		}
	}
	next := ""
	if res.IsTruncated {
		next = res.NextContinuationToken
	}
	return keys, next, nil
}

// List returns up to max objects whose key starts with prefix, after the
// page token; expired objects are left out. Each object is described in
// full (one HEAD each: a listing alone has no metadata).
func (c *Client) List(prefix, token string, maxKeys int) ([]Object, string, error) {
	keys, next, err := c.ListKeys(prefix, token, maxKeys)
	if err != nil {
		return nil, "", err
	}
	var out []Object
	for _, key := range keys {
		o, err := c.Head(key)
		if err != nil {
			return nil, "", err
		}
		if o != nil {
			out = append(out, *o)
		}
	}
	return out, next, nil
}

// Presigned is a request anyone may make, as given, before Expires.
type Presigned struct {
	Method  string
	URL     string
	Header  map[string]string
	Expires time.Time
}

// MaxPresignTTL is the longest a presigned URL may work.
const MaxPresignTTL = sigv4.MaxPresignExpiry

func checkTTL(ttl time.Duration) error {
	if ttl < time.Second || ttl > MaxPresignTTL {
		return fmt.Errorf("ttl %s: want 1s to %s", ttl, MaxPresignTTL)
	}
	return nil
}

// PresignPut returns a PUT that stores the object key of size bytes with
// the given sha256; the store refuses any other content (the request
// carries the checksum, signed).
func (c *Client) PresignPut(key string, size int64, sha string, o PutOptions, ttl time.Duration) (*Presigned, error) {
	if err := checkTTL(ttl); err != nil {
		return nil, &Error{Kind: Invalid, Op: "presign", Key: key, Message: err.Error()}
	}
	if b, err := hex.DecodeString(sha); err != nil || len(b) != sha256.Size {
		return nil, &Error{Kind: Invalid, Op: "presign", Key: key, Message: "a PUT needs the content's sha256 (64 hex digits)"}
	}
	if size < 0 || size > MaxPutBytes {
		return nil, &Error{Kind: Invalid, Op: "presign", Key: key, Message: fmt.Sprintf("size %d: one PUT carries at most %d bytes", size, int64(MaxPutBytes))}
	}
	h, err := o.headers(strings.ToLower(sha))
	if err != nil {
		return nil, &Error{Kind: Invalid, Op: "presign", Key: key, Message: err.Error()}
	}
	h["x-amz-checksum-sha256"] = b64(sha)
	now := c.now()
	u := c.signer().Presign("PUT", c.ObjectURL(key), h, sigv4.UnsignedPayload, ttl, now)
	return &Presigned{Method: "PUT", URL: u.String(), Header: h, Expires: now.Add(ttl).UTC().Truncate(time.Second)}, nil
}

// PresignGet returns a GET of key; with a filename, a browser saves the
// download under it.
func (c *Client) PresignGet(key, filename string, ttl time.Duration) (*Presigned, error) {
	if err := checkTTL(ttl); err != nil {
		return nil, &Error{Kind: Invalid, Op: "presign", Key: key, Message: err.Error()}
	}
	u := c.ObjectURL(key)
	if filename != "" {
		u.RawQuery = "response-content-disposition=" + sigv4.Escape(contentDisposition(filename))
	}
	now := c.now()
	p := c.signer().Presign("GET", u, nil, sigv4.UnsignedPayload, ttl, now)
	return &Presigned{Method: "GET", URL: p.String(), Header: map[string]string{}, Expires: now.Add(ttl).UTC().Truncate(time.Second)}, nil
}

// contentDisposition is an attachment named filename (RFC 6266: a plain
// name when it is ASCII, and filename* in UTF-8).
func contentDisposition(filename string) string {
	if v := mime.FormatMediaType("attachment", map[string]string{"filename": filename}); v != "" {
		return v
	}
	return "attachment"
}

type initiateResult struct {
	UploadID string `xml:"UploadId"`
}

// CreateMultipart opens a multipart upload of key; sha is the whole
// object's sha256, recorded as its metadata.
func (c *Client) CreateMultipart(key, sha string, o PutOptions) (string, error) {
	h, err := o.headers(strings.ToLower(sha))
	if err != nil {
		return "", &Error{Kind: Invalid, Op: "upload_begin", Key: key, Message: err.Error()}
	}
	u := c.ObjectURL(key)
	u.RawQuery = "uploads="
	resp, err := c.send("upload_begin", key, "POST", u, h, nil, sigv4.EmptySHA256)
	if err != nil {
		return "", err
	}
	var res initiateResult
	if err := xml.Unmarshal(resp.Body, &res); err != nil || res.UploadID == "" {
		return "", &Error{Kind: Failed, Op: "upload_begin", Key: key, Status: resp.Status, Message: "no upload id in the answer"}
	}
	return res.UploadID, nil
}

func uploadQuery(id string, part int) string {
	q := "uploadId=" + sigv4.Escape(id)
	if part > 0 {
		q = "partNumber=" + strconv.Itoa(part) + "&" + q
	}
	return q
}

// UploadPart stores part n (from 1) of an upload and returns its ETag.
func (c *Client) UploadPart(key, id string, n int, body []byte, sha string) (string, error) {
	if n < 1 || n > MaxParts {
		return "", &Error{Kind: Invalid, Op: "upload_part", Key: key, Message: fmt.Sprintf("part number %d: want 1 to %d", n, MaxParts)}
	}
	if len(body) > MaxPartBytes {
		return "", &Error{Kind: Invalid, Op: "upload_part", Key: key, Message: fmt.Sprintf("part of %d bytes: at most %d", len(body), MaxPartBytes)}
	}
	if sha == "" {
		sha = hexSHA256(body)
	}
	u := c.ObjectURL(key)
	u.RawQuery = uploadQuery(id, n)
	resp, err := c.send("upload_part", key, "PUT", u, nil, body, strings.ToLower(sha))
	if err != nil {
		return "", err
	}
	etag := resp.Header["etag"]
	if etag == "" {
		return "", &Error{Kind: Failed, Op: "upload_part", Key: key, Status: resp.Status,
			Message: "no ETag in the answer (does the host enable HTTP response headers?)"}
	}
	return etag, nil
}

// Part is a stored part.
type Part struct {
	Number int
	ETag   string
}

type completeUpload struct {
	XMLName xml.Name `xml:"CompleteMultipartUpload"`
	Parts   []struct {
		PartNumber int    `xml:"PartNumber"`
		ETag       string `xml:"ETag"`
	} `xml:"Part"`
}

// CompleteMultipart makes the parts the object key.
func (c *Client) CompleteMultipart(key, id string, parts []Part) (*Object, error) {
	var doc completeUpload
	for _, p := range parts {
		doc.Parts = append(doc.Parts, struct {
			PartNumber int    `xml:"PartNumber"`
			ETag       string `xml:"ETag"`
		}{p.Number, p.ETag})
	}
	body, err := xml.Marshal(doc)
	if err != nil {
		return nil, &Error{Kind: Invalid, Op: "upload_complete", Key: key, Message: err.Error()}
	}
	u := c.ObjectURL(key)
	u.RawQuery = uploadQuery(id, 0)
	resp, err := c.send("upload_complete", key, "POST", u, map[string]string{"Content-Type": "application/xml"}, body, hexSHA256(body))
	if err != nil {
		return nil, err
	}
	// S3 may answer 200 and still fail: the error is in the body.
	if bytes.Contains(resp.Body, []byte("<Error>")) {
		return nil, parseError("upload_complete", key, 500, resp.Body)
	}
	o, err := c.Head(key)
	if err == nil && o == nil {
		err = &Error{Kind: Failed, Op: "upload_complete", Key: key, Message: "the completed object is not there"}
	}
	return o, err
}

// AbortMultipart removes the parts of an upload; an upload already gone is
// no error.
func (c *Client) AbortMultipart(key, id string) error {
	u := c.ObjectURL(key)
	u.RawQuery = uploadQuery(id, 0)
	_, err := c.send("upload_abort", key, "DELETE", u, nil, nil, sigv4.EmptySHA256)
	var e *Error
	if errors.As(err, &e) && e.Code == "NoSuchUpload" {
		return nil
	}
	return err
}

// Upload is a multipart upload in progress.
type Upload struct {
	Key       string // without the prefix
	ID        string
	Initiated time.Time
}

type uploadsResult struct {
	Uploads []struct {
		Key       string `xml:"Key"`
		UploadID  string `xml:"UploadId"`
		Initiated string `xml:"Initiated"`
	} `xml:"Upload"`
}

// ListMultipartUploads returns the uploads in progress under prefix (the
// first 1000).
func (c *Client) ListMultipartUploads(prefix string) ([]Upload, error) {
	u := c.BucketURL()
	u.RawQuery = "prefix=" + sigv4.Escape(c.Prefix+prefix) + "&uploads="
	resp, err := c.send("list_uploads", prefix, "GET", u, nil, nil, sigv4.EmptySHA256)
	if err != nil {
		return nil, err
	}
	var res uploadsResult
	if err := xml.Unmarshal(resp.Body, &res); err != nil {
		return nil, &Error{Kind: Failed, Op: "list_uploads", Key: prefix, Status: resp.Status, Message: "unreadable listing: " + err.Error()}
	}
	var out []Upload
	for _, up := range res.Uploads {
		key, ok := strings.CutPrefix(up.Key, c.Prefix)
		if !ok {
			continue
		}
		t, _ := time.Parse(time.RFC3339, up.Initiated)
		out = append(out, Upload{Key: key, ID: up.UploadID, Initiated: t})
	}
	return out, nil
}
