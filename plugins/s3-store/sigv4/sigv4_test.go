package sigv4_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-arcade/arcade/plugins/s3-store/sigv4"
)

// The examples of AWS's S3 documentation ("Signature calculations for the
// Authorization header" and "Authenticating requests: using query
// parameters"), with their published signatures.
var example = sigv4.Signer{
	Credentials: sigv4.Credentials{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
	Region:      "us-east-1",
}

var exampleTime = time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC)

func TestSignHeaderExample(t *testing.T) {
	u, _ := url.Parse("https://examplebucket.s3.amazonaws.com/test.txt")
	h := example.Sign("GET", u, map[string]string{"Range": "bytes=0-9"}, sigv4.EmptySHA256, exampleTime)
	want := "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, " +
		"SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, " +
		"Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
	if h["Authorization"] != want {
		t.Errorf("Authorization:\n got %s\nwant %s", h["Authorization"], want)
	}
	if h["X-Amz-Date"] != "20130524T000000Z" || h["X-Amz-Content-Sha256"] != sigv4.EmptySHA256 {
		t.Errorf("headers: %v", h)
	}
}

func TestPresignExample(t *testing.T) {
	u, _ := url.Parse("https://examplebucket.s3.amazonaws.com/test.txt")
	got := example.Presign("GET", u, nil, sigv4.UnsignedPayload, 24*time.Hour, exampleTime)
	if sig := got.Query().Get("X-Amz-Signature"); sig != "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404" {
		t.Errorf("signature %s\nurl %s", sig, got)
	}
	for _, p := range []string{"X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Expires=86400", "X-Amz-SignedHeaders=host",
		"X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"} {
		if !strings.Contains(got.RawQuery, p) {
			t.Errorf("query %s lacks %s", got.RawQuery, p)
		}
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"a/b c/d+e~f": "a/b%20c/d%2Be~f",
		"ü/x=y&z":     "%C3%BC/x%3Dy%26z",
		"AZaz09-_.~":  "AZaz09-_.~",
	} {
		if got := sigv4.EscapePath(in); got != want {
			t.Errorf("EscapePath(%q) = %q, want %q", in, got, want)
		}
	}
	if got := sigv4.Escape("a/b"); got != "a%2Fb" {
		t.Errorf("Escape keeps a slash: %s", got)
	}
}
