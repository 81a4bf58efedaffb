package pdk

import (
	"errors"
	"fmt"
	"strings"
)

// LogLevel is a kernel log level.
type LogLevel int

// Log levels, as the Extism kernel has them.
const (
	LogTrace LogLevel = iota
	LogDebug
	LogInfo
	LogWarn
	LogError
)

// Request is an HTTP request made through the host.
type Request struct {
	Method string // default GET
	URL    string
	Header map[string]string
	Body   []byte
}

// Response is the host's answer to a Request.
type Response struct {
	StatusCode int
	Body       []byte
	// Header holds the response's headers, names in lower case
	// (FetchWithHeaders only).
	Header map[string]string
}

// OK reports a 2xx status.
func (r *Response) OK() bool { return r.StatusCode >= 200 && r.StatusCode < 300 }

// Err returns an error naming the status and the start of the body when
// the status is not 2xx, nil otherwise.
func (r *Response) Err() error {
	if r.OK() {
		return nil
	}
	body := strings.TrimSpace(string(r.Body))
	if len(body) > 200 {
		body = body[:200] + "…"
	}
	return fmt.Errorf("HTTP %d: %s", r.StatusCode, body)
}

// PermanentVar is the plugin variable a plugin sets to "1" before reporting
// an error (error_set) to mark the error permanent. Permanent marks it for
// Go plugins; plugins in other languages set the variable themselves.
const PermanentVar = "arcade.error.permanent"

// Permanent marks err as permanent: calling again with the same input cannot
// succeed (a receiver refusing the request with 400, a config value
// missing). Arcade does not retry a call that failed with a permanent error;
// other errors are retried where Arcade retries (notification delivery).
// Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }
