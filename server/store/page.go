package store

import (
	"fmt"
	"strings"
)

// Order is a validated sort order: a column and a direction.
type Order struct {
	Column string
	Desc   bool
}

// ParseOrder reads an order_by value such as "created_at desc" against the
// columns a list allows; empty gives def.
func ParseOrder(orderBy string, allowed []string, def Order) (Order, error) {
	fields := strings.Fields(strings.ToLower(orderBy))
	if len(fields) == 0 {
		return def, nil
	}
	if len(fields) > 2 || (len(fields) == 2 && fields[1] != "asc" && fields[1] != "desc") {
		return Order{}, fmt.Errorf("want \"FIELD\" or \"FIELD desc\", got %q", orderBy)
	}
	for _, c := range allowed {
		if fields[0] == c {
			return Order{Column: c, Desc: len(fields) == 2 && fields[1] == "desc"}, nil
		}
	}
	return Order{}, fmt.Errorf("cannot sort by %q; sortable fields: %s", fields[0], strings.Join(allowed, ", "))
}

func (o Order) sql() string {
	if o.Desc {
		return o.Column + " DESC"
	}
	return o.Column + " ASC"
}

// Page is a slice of a list: skip Offset records, return at most Limit.
type Page struct {
	Offset int
	Limit  int
	Order  Order
}
