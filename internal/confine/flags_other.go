//go:build !unix

package confine

const (
	oNonblock = 0
	oNoCTTY   = 0
)
