package store

import (
	"context"
	"fmt"
	"strings"
)

// IDTable names a table whose rows are found by id prefix.
type IDTable string

// The tables whose ids people type.
const (
	JobIDs   IDTable = "jobs"
	RunIDs   IDTable = "pipeline_runs"
	AgentIDs IDTable = "agents"
)

// IDsWithPrefix returns up to limit ids of table that start with prefix, in
// order. prefix is lowercase hex and dashes (ids are UUIDs), so it holds no
// LIKE wildcard. A scan, meant for ids typed by people.
func (s *Store) IDsWithPrefix(ctx context.Context, table IDTable, prefix string, limit int) ([]string, error) {
	switch table {
	case JobIDs, RunIDs, AgentIDs:
	default:
		return nil, fmt.Errorf("ids of %q: not a table of ids", table)
	}
	if strings.Trim(prefix, "0123456789abcdef-") != "" {
		return nil, fmt.Errorf("id prefix %q: want hex digits and dashes", prefix)
	}
	var ids []string
	err := s.db.NewSelect().Table(string(table)).Column("id").Where("id LIKE ?", prefix+"%").
		OrderExpr("id").Limit(limit).Scan(ctx, &ids)
	if err != nil {
		return nil, fmt.Errorf("ids of %s starting with %s: %w", table, prefix, err)
	}
	return ids, nil
}
