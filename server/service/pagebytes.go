package service

import "google.golang.org/protobuf/proto"

// replyBudget bounds one page of a listing in bytes, under the 4 MiB a gRPC
// client accepts by default: a page ends at its page_size or at this size,
// whichever comes first, and next_page_token goes on from there.
const replyBudget = 3 << 20

// pageBytes counts the bytes of a page being built.
type pageBytes struct {
	left  int
	items int
}

func newPageBytes() *pageBytes { return &pageBytes{left: replyBudget} }

// take reports whether m still fits the page, and counts it if so. The
// first item always fits, so a listing always moves on (what one item may
// hold is bounded when it is created).
func (b *pageBytes) take(m proto.Message) bool {
	size := proto.Size(m) + 8 // with its field tag and length
	if b.items > 0 && size > b.left {
		return false
	}
	b.left -= size
	b.items++
	return true
}
