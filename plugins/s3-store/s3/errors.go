package s3

import (
	"encoding/xml"
	"fmt"
	"strings"
)

// Kind classifies a failed request the way the storage contract does.
type Kind int

// Kinds of failure.
const (
	// Failed is a failure none of the others describe.
	Failed Kind = iota
	NotFound
	// Unavailable: the store failed on its side (5xx, throttling); trying
	// again later may work.
	Unavailable
	// Denied: the store refused the credentials or the access.
	Denied
	// Misconfigured: the configuration is wrong (no such bucket, wrong
	// region).
	Misconfigured
	// Corrupt: the content does not match its digest.
	Corrupt
	// Invalid: the request is wrong (a part too small, a bad argument).
	Invalid
)

// Error is a request S3 refused or failed.
type Error struct {
	Kind   Kind
	Op     string // "put", "get"…
	Key    string // the object's key, without the prefix; empty for the bucket
	Status int    // HTTP status
	// Code and Message are S3's (<Error><Code>…), when it sent them.
	Code    string
	Message string
}

func (e *Error) Error() string {
	what := e.Op
	if e.Key != "" {
		what += " " + e.Key
	}
	detail := fmt.Sprintf("HTTP %d", e.Status)
	switch {
	case e.Status == 0: // refused before it was sent, or no answer
		detail = e.Message
	case e.Code == "" && e.Message != "":
		detail = fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
	case e.Code != "" && e.Message != "":
		detail = fmt.Sprintf("%s: %s (HTTP %d)", e.Code, e.Message, e.Status)
	case e.Code != "":
		detail = fmt.Sprintf("%s (HTTP %d)", e.Code, e.Status)
	}
	return fmt.Sprintf("s3-store: %s: %s%s", what, detail, hint(e))
}

// hint adds what the operator can do about a refusal.
func hint(e *Error) string {
	switch e.Code {
	case "SignatureDoesNotMatch", "InvalidAccessKeyId", "XAdminUserNotFound":
		return "; check the access key and secret (access_key_id, secret_access_key)"
	case "NoSuchBucket":
		return "; check config bucket, or create it"
	case "AuthorizationHeaderMalformed", "PermanentRedirect":
		return "; check config region and endpoint"
	}
	return ""
}

// s3Error is S3's error document.
type s3Error struct {
	XMLName xml.Name `xml:"Error"`
	Code    string   `xml:"Code"`
	Message string   `xml:"Message"`
}

// parseError reads an error answer: status and, when there is one, the
// error document (HEAD answers have none).
func parseError(op, key string, status int, body []byte) *Error {
	e := &Error{Op: op, Key: key, Status: status}
	var doc s3Error
	if len(body) > 0 && xml.Unmarshal(body, &doc) == nil {
		e.Code, e.Message = doc.Code, strings.TrimSpace(doc.Message)
		if len(e.Message) > 300 {
			e.Message = e.Message[:300] + "…"
		}
	}
	e.Kind = classify(status, e.Code)
	return e
}

func classify(status int, code string) Kind {
	switch code {
	case "NoSuchKey", "NoSuchUpload":
		return NotFound
	case "NoSuchBucket", "AuthorizationHeaderMalformed", "PermanentRedirect", "InvalidBucketName", "InvalidRegion":
		return Misconfigured
	// XAdminUserNotFound: Versity Gateway's InvalidAccessKeyId.
	case "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "XAdminUserNotFound", "InvalidToken", "ExpiredToken",
		"RequestTimeTooSkewed", "AllAccessDisabled", "AccountProblem":
		return Denied
	case "BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest":
		return Corrupt
	case "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout":
		return Unavailable
	case "EntityTooSmall", "EntityTooLarge", "InvalidPart", "InvalidPartOrder", "InvalidArgument", "InvalidRange", "InvalidRequest":
		return Invalid
	}
	switch {
	case status == 404:
		return NotFound
	case status == 401 || status == 403:
		return Denied
	case status >= 500 || status == 429:
		return Unavailable
	case status == 301 || status == 307:
		return Misconfigured
	case status >= 400:
		return Invalid
	}
	return Failed
}
