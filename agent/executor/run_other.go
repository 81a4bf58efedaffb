//go:build !linux

package executor

import (
	"context"
	"errors"
)

var errUnsupported = errors.New("executor: jobs run on Linux only")

// BecomeSubreaper is supported on Linux only.
func BecomeSubreaper() error { return errUnsupported }

// Run fails every job: jobs run on Linux only.
func Run(ctx context.Context, spec Spec, emit func(Line)) Result {
	return Result{ExitCode: -1, Outcome: Failed, Err: errUnsupported}
}
