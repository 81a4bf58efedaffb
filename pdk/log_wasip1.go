//go:build wasip1

package pdk

import "fmt"

// Tracef logs at trace level through the kernel's log_trace (never
// log_error). Only a plugin that calls Tracef imports log_trace, which older
// kernels lack (the Extism JavaScript runtime 1.0): such a plugin loads only
// where the kernel has it, as Arcade's does.
func Tracef(format string, args ...any) {
	extismLogTrace(kernelWrite([]byte(fmt.Sprintf(format, args...))))
}

// Debugf logs at debug level.
func Debugf(format string, args ...any) { Log(LogDebug, fmt.Sprintf(format, args...)) }

// Infof logs at info level.
func Infof(format string, args ...any) { Log(LogInfo, fmt.Sprintf(format, args...)) }

// Warnf logs at warn level.
func Warnf(format string, args ...any) { Log(LogWarn, fmt.Sprintf(format, args...)) }

// Errorf logs at error level; it does not fail the call (return an error
// from the handler for that).
func Errorf(format string, args ...any) { Log(LogError, fmt.Sprintf(format, args...)) }
