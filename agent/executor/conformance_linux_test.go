package executor_test

import (
	"testing"

	"github.com/go-arcade/arcade/agent/executor"
	"github.com/go-arcade/arcade/agent/executor/executortest"
)

// TestShellConformance runs the executor conformance suite on the host.
func TestShellConformance(t *testing.T) {
	executortest.Run(t, func(t *testing.T, dir string) executor.Executor { return executor.Shell{} })
}
