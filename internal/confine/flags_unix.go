//go:build unix

package confine

import "syscall"

const (
	// oNonblock keeps opening a FIFO from waiting for a writer.
	oNonblock = syscall.O_NONBLOCK
	// oNoCTTY keeps a terminal opened by mistake from becoming ours.
	oNoCTTY = syscall.O_NOCTTY
)
