package service

import "google.golang.org/protobuf/proto"

// replyBudget bounds one page of a listing in bytes, under the 4 MiB a gRPC
// client accepts by default: a page ends at its page_size or at this size,
// whichever comes first, and next_page_token goes on from there.
const replyBudget = 3 << 20

// fitBytes returns how many of items, in order, fit in budget bytes as
// encoded: at least one, so that a listing always moves on (what one item
// may hold is bounded when it is created).
func fitBytes[T proto.Message](items []T, budget int) int {
	total := 0
	for i, it := range items {
		total += proto.Size(it) + 8 // with its field tag and length
		if total > budget && i > 0 {
			return i
		}
	}
	return len(items)
}
