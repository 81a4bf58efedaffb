// Package sigv4 signs S3 requests with AWS Signature Version 4, in an
// Authorization header or in the query string of a presigned URL. It uses
// the standard library only, so it runs inside a wasm plugin.
//
// The caller builds the URL with EscapePath, so that the path it sends is
// the path it signed (S3 signs paths as they are sent, without normalising
// them).
package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Algorithm is the only signing algorithm this package speaks.
const Algorithm = "AWS4-HMAC-SHA256"

// UnsignedPayload is the payload hash of a request whose body is not signed.
const UnsignedPayload = "UNSIGNED-PAYLOAD"

// EmptySHA256 is the sha256 of an empty payload.
const EmptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// MaxPresignExpiry is the longest validity SigV4 allows a presigned URL.
const MaxPresignExpiry = 7 * 24 * time.Hour

// Credentials are an access key pair, with a session token for temporary
// credentials.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
}

// Signer signs requests for one service in one region.
type Signer struct {
	Credentials
	Region  string
	Service string // "s3" when empty
}

func (s Signer) service() string {
	if s.Service == "" {
		return "s3"
	}
	return s.Service
}

func (s Signer) scope(date string) string {
	return date + "/" + s.Region + "/" + s.service() + "/aws4_request"
}

// Sign returns the headers to add to a request (X-Amz-Date,
// X-Amz-Content-Sha256, X-Amz-Security-Token when set, Authorization).
// header holds the request's other headers to sign (Content-Type,
// x-amz-meta-…); the Host header is taken from u. payloadHash is the hex
// sha256 of the body, or UnsignedPayload.
func (s Signer) Sign(method string, u *url.URL, header map[string]string, payloadHash string, now time.Time) map[string]string {
	now = now.UTC()
	amzDate := now.Format("20060102T150405Z")
	out := map[string]string{"X-Amz-Date": amzDate, "X-Amz-Content-Sha256": payloadHash}
	if s.SessionToken != "" {
		out["X-Amz-Security-Token"] = s.SessionToken
	}
	signed := map[string]string{}
	for k, v := range header {
		signed[k] = v
	}
	for k, v := range out {
		signed[k] = v
	}
	names, canonHeaders := canonicalHeaders(u, signed)
	creq := strings.Join([]string{method, canonicalPath(u), canonicalQuery(u.Query()), canonHeaders, names, payloadHash}, "\n")
	date := amzDate[:8]
	sig := s.signature(date, amzDate, creq)
	out["Authorization"] = Algorithm + " Credential=" + s.AccessKeyID + "/" + s.scope(date) +
		", SignedHeaders=" + names + ", Signature=" + sig
	return out
}

// Presign returns u with the query string of a presigned request valid for
// expires from now (at most MaxPresignExpiry). header holds the headers the
// request must carry, signed with it (the Host header is always signed);
// whoever uses the URL sends them as given. payloadHash is usually
// UnsignedPayload: the body is not known when the URL is made.
func (s Signer) Presign(method string, u *url.URL, header map[string]string, payloadHash string, expires time.Duration, now time.Time) *url.URL {
	now = now.UTC()
	amzDate := now.Format("20060102T150405Z")
	date := amzDate[:8]
	names, canonHeaders := canonicalHeaders(u, header)
	q := u.Query()
	q.Set("X-Amz-Algorithm", Algorithm)
	q.Set("X-Amz-Credential", s.AccessKeyID+"/"+s.scope(date))
	q.Set("X-Amz-Date", amzDate)
	q.Set("X-Amz-Expires", strconv.FormatInt(int64(expires/time.Second), 10))
	q.Set("X-Amz-SignedHeaders", names)
	if s.SessionToken != "" {
		q.Set("X-Amz-Security-Token", s.SessionToken)
	}
	creq := strings.Join([]string{method, canonicalPath(u), canonicalQuery(q), canonHeaders, names, payloadHash}, "\n")
	sig := s.signature(date, amzDate, creq)
	out := *u
	out.RawQuery = canonicalQuery(q) + "&X-Amz-Signature=" + sig
	return &out
}

func (s Signer) signature(date, amzDate, canonicalRequest string) string {
	sum := sha256.Sum256([]byte(canonicalRequest))
	toSign := Algorithm + "\n" + amzDate + "\n" + s.scope(date) + "\n" + hex.EncodeToString(sum[:])
	k := hmacSHA256([]byte("AWS4"+s.SecretAccessKey), date)
	k = hmacSHA256(k, s.Region)
	k = hmacSHA256(k, s.service())
	k = hmacSHA256(k, "aws4_request")
	return hex.EncodeToString(hmacSHA256(k, toSign))
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// canonicalHeaders returns the signed header names (";"-joined) and the
// canonical header block, Host included.
func canonicalHeaders(u *url.URL, header map[string]string) (string, string) {
	vals := map[string]string{"host": u.Host}
	for k, v := range header {
		vals[strings.ToLower(k)] = strings.Join(strings.Fields(v), " ")
	}
	names := make([]string, 0, len(vals))
	for k := range vals {
		names = append(names, k)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, k := range names {
		b.WriteString(k)
		b.WriteByte(':')
		b.WriteString(vals[k])
		b.WriteByte('\n')
	}
	return strings.Join(names, ";"), b.String()
}

func canonicalPath(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		return "/"
	}
	return p
}

func canonicalQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		vs := slices.Clone(q[k])
		slices.Sort(vs)
		for _, v := range vs {
			parts = append(parts, Escape(k)+"="+Escape(v))
		}
	}
	return strings.Join(parts, "&")
}

// Escape encodes s as SigV4 does: every byte but A-Z a-z 0-9 - _ . ~ as
// %XX.
func Escape(s string) string {
	return escape(s, false)
}

// EscapePath encodes a path as S3 expects it signed and sent: each segment
// with Escape, the slashes kept.
func EscapePath(p string) string {
	return escape(p, true)
}

func escape(s string, keepSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' || keepSlash && c == '/' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}
