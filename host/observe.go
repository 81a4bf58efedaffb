package host

import (
	"context"
	"errors"
	"time"
)

// CallRecord describes one finished plugin call, for an observer that keeps
// statistics (the server's metrics).
type CallRecord struct {
	Plugin   string
	Function string
	Duration time.Duration
	// Err is the call's error (an *Error), nil on success.
	Err error
}

// Reason is the class of the call's error ("timed out"), "" on success.
func (r CallRecord) Reason() string {
	if r.Err == nil {
		return ""
	}
	var e *Error
	if errors.As(r.Err, &e) {
		return string(e.Reason)
	}
	return "error"
}

// WithCallObserver makes the manager hand every finished call to fn. fn is
// called on the caller's goroutine, possibly from many calls at once: it must
// be quick and safe for concurrent use.
func WithCallObserver(fn func(CallRecord)) Option {
	return func(o *options) { o.observeCall = fn }
}

// Call calls one of the plugin's functions with a raw (protojson) input and
// returns its raw output. It is safe for concurrent use. The failure policy
// is not applied here; the typed faces apply it.
func (p *Plugin) Call(ctx context.Context, function string, input []byte) ([]byte, error) {
	observe := p.m.opts.observeCall
	if observe == nil {
		return p.call(ctx, function, input)
	}
	start := time.Now()
	out, err := p.call(ctx, function, input)
	observe(CallRecord{Plugin: p.name, Function: function, Duration: time.Since(start), Err: err})
	return out, err
}
