package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/driver/pgdriver"
)

// Secret scopes, as stored.
const (
	ScopeGlobal   = "global"
	ScopePipeline = "pipeline"
	ScopeSource   = "source"
)

// Secret is a stored secret. Value is sealed (server/secrets) with the row
// id as additional data, so a sealed value copied to another row does not
// open; KeyID names the key it is sealed under.
type Secret struct {
	bun.BaseModel `bun:"table:secrets"`

	ID    string `bun:"id,pk"`
	Name  string `bun:"name,notnull"`
	Scope string `bun:"scope,notnull"`
	// Target is the pipeline's name (pipeline scope) or the normalized
	// repository URL (source scope); empty for global.
	Target      string    `bun:"target,notnull"`
	Value       []byte    `bun:"value,notnull"`
	KeyID       string    `bun:"key_id,notnull"`
	Description string    `bun:"description,notnull"`
	Version     int64     `bun:"version,notnull"`
	CreatedAt   time.Time `bun:"created_at,notnull"`
	UpdatedAt   time.Time `bun:"updated_at,notnull"`
	CreatedBy   string    `bun:"created_by,notnull"`
	UpdatedBy   string    `bun:"updated_by,notnull"`
}

// CreateSecret stores a new secret; a name taken in its scope is ErrConflict.
func (s *Store) CreateSecret(ctx context.Context, sec *Secret) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		n, err := tx.NewSelect().Model((*Secret)(nil)).Where("scope = ? AND target = ? AND name = ?", sec.Scope, sec.Target, sec.Name).Count(ctx)
		if err != nil {
			return fmt.Errorf("create secret %s: %w", sec.Name, err)
		}
		if n > 0 {
			return fmt.Errorf("create secret %s: %w", sec.Name, ErrConflict)
		}
		if _, err := tx.NewInsert().Model(sec).Exec(ctx); err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("create secret %s: %w", sec.Name, ErrConflict)
			}
			return fmt.Errorf("create secret %s: %w", sec.Name, err)
		}
		return nil
	})
}

// GetSecret loads a secret by scope, target and name.
func (s *Store) GetSecret(ctx context.Context, scope, target, name string) (*Secret, error) {
	sec := new(Secret)
	if err := s.db.NewSelect().Model(sec).Where("scope = ? AND target = ? AND name = ?", scope, target, name).Scan(ctx); err != nil {
		return nil, fmt.Errorf("get secret %s: %w", name, notFound(err))
	}
	return sec, nil
}

// SecretFilter narrows ListSecrets.
type SecretFilter struct {
	Scope  string // "" for all
	Target string // "" for all
}

// ListSecrets returns a page of secrets (scope, target, name order) and how
// many match.
func (s *Store) ListSecrets(ctx context.Context, f SecretFilter, p Page) ([]*Secret, int, error) {
	var out []*Secret
	q := s.db.NewSelect().Model(&out).Order("scope ASC", "target ASC", "name ASC").Offset(p.Offset)
	if f.Scope != "" {
		q = q.Where("scope = ?", f.Scope)
	}
	if f.Target != "" {
		q = q.Where("target = ?", f.Target)
	}
	if p.Limit > 0 {
		q = q.Limit(p.Limit)
	}
	total, err := q.ScanAndCount(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list secrets: %w", err)
	}
	return out, total, nil
}

// ModifySecret loads a secret under lock, lets fn change it and writes it
// back.
func (s *Store) ModifySecret(ctx context.Context, scope, target, name string, fn func(*Secret) error) (*Secret, error) {
	sec := new(Secret)
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewSelect().Model(sec).Where("scope = ? AND target = ? AND name = ?", scope, target, name).
			Apply(s.lockRows).Scan(ctx); err != nil {
			return notFound(err)
		}
		if err := fn(sec); err != nil {
			return err
		}
		_, err := tx.NewUpdate().Model(sec).WherePK().Exec(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	return sec, nil
}

// DeleteSecret removes a secret and returns what it was.
func (s *Store) DeleteSecret(ctx context.Context, scope, target, name string) (*Secret, error) {
	sec := new(Secret)
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewSelect().Model(sec).Where("scope = ? AND target = ? AND name = ?", scope, target, name).
			Apply(s.lockRows).Scan(ctx); err != nil {
			return notFound(err)
		}
		_, err := tx.NewDelete().Model(sec).WherePK().Exec(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("delete secret %s: %w", name, err)
	}
	return sec, nil
}

// SecretQuery says which secrets a consumer may use: global ones, those of
// a pipeline (by id or name) and those of a source repository, or of the
// source of a run.
type SecretQuery struct {
	Names []string
	// Pipeline is the id or name of the pipeline whose secrets count.
	Pipeline string
	// Source is a normalized repository URL; RunID stands for the source of
	// that run when Source is empty.
	Source string
	RunID  string
}

// FindSecrets returns the secrets of q's names in the scopes q may use; for
// a name found in several scopes, the pipeline's wins over the source's,
// which wins over the global one. Names not found are left out.
func (s *Store) FindSecrets(ctx context.Context, q SecretQuery) (map[string]*Secret, error) {
	if len(q.Names) == 0 {
		return map[string]*Secret{}, nil
	}
	var rows []*Secret
	sel := s.db.NewSelect().Model(&rows).Where("name IN (?)", bun.In(q.Names)).WhereGroup(" AND ", func(w *bun.SelectQuery) *bun.SelectQuery {
		w = w.Where("scope = ?", ScopeGlobal)
		if q.Pipeline != "" {
			w = w.WhereOr("scope = ? AND target IN (SELECT name FROM pipelines WHERE id = ? OR name = ?)", ScopePipeline, q.Pipeline, q.Pipeline)
		}
		switch {
		case q.Source != "":
			w = w.WhereOr("scope = ? AND target = ?", ScopeSource, q.Source)
		case q.RunID != "":
			w = w.WhereOr("scope = ? AND target <> '' AND target = (SELECT source FROM pipeline_runs WHERE id = ?)", ScopeSource, q.RunID)
		}
		return w
	})
	if err := sel.Scan(ctx); err != nil {
		return nil, fmt.Errorf("find secrets: %w", err)
	}
	rank := map[string]int{ScopeGlobal: 1, ScopeSource: 2, ScopePipeline: 3}
	out := make(map[string]*Secret, len(rows))
	for _, r := range rows {
		if cur := out[r.Name]; cur == nil || rank[r.Scope] > rank[cur.Scope] {
			out[r.Name] = r
		}
	}
	return out, nil
}

// SecretNamesIn returns which of names exist globally, for the pipeline
// (by name) or, with anySource, for some source repository.
func (s *Store) SecretNamesIn(ctx context.Context, names []string, pipeline string, anySource bool) (map[string]bool, error) {
	out := map[string]bool{}
	if len(names) == 0 {
		return out, nil
	}
	var rows []struct {
		Name string `bun:"name"`
	}
	q := s.db.NewSelect().Model((*Secret)(nil)).Column("name").Where("name IN (?)", bun.In(names)).
		WhereGroup(" AND ", func(w *bun.SelectQuery) *bun.SelectQuery {
			w = w.Where("scope = ?", ScopeGlobal)
			if pipeline != "" {
				w = w.WhereOr("scope = ? AND target = ?", ScopePipeline, pipeline)
			}
			if anySource {
				w = w.WhereOr("scope = ?", ScopeSource)
			}
			return w
		})
	if err := q.Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("find secret names: %w", err)
	}
	for _, r := range rows {
		out[r.Name] = true
	}
	return out, nil
}

// isUniqueViolation tells a unique index refusing a row on PostgreSQL
// (SQLite's immediate transactions serialise the check before the insert).
func isUniqueViolation(err error) bool {
	var pgErr pgdriver.Error
	return errors.As(err, &pgErr) && pgErr.Field('C') == "23505"
}

// Sealed is one sealed value in the database, for re-sealing under a new
// key: its table, row and column, the value and the additional data it was
// sealed with.
type Sealed struct {
	Table string
	// Column is the column of the table that holds it.
	Column string
	ID     string
	Value  []byte
	AAD    []byte
}

// sealedColumns are the columns that hold sealed values: the secrets
// (additional data: the row id), and the jobs', pipelines' and runs' own
// secrets (none).
var sealedColumns = []struct {
	table, column string
	aad           bool
}{
	{"secrets", "value", true},
	{"jobs", "secrets", false},
	{"pipelines", "secrets", false},
	{"pipeline_runs", "secrets", false},
	{"pipelines", "trigger_secrets", false},
}

// SealedValues calls fn with every sealed value of the database not sealed
// under key keep (fn decides from Value's key id), a page at a time.
func (s *Store) SealedValues(ctx context.Context, skip func(value []byte) bool, fn func(Sealed) error) error {
	for _, c := range sealedColumns {
		after := ""
		for {
			var rows []struct {
				ID    string `bun:"id"`
				Value []byte `bun:"value"`
			}
			err := s.db.NewSelect().Table(c.table).ColumnExpr("id").ColumnExpr(c.column+" AS value").
				Where(c.column+" IS NOT NULL").Where("id > ?", after).Order("id ASC").Limit(500).Scan(ctx, &rows)
			if err != nil {
				return fmt.Errorf("read sealed %s.%s: %w", c.table, c.column, err)
			}
			for _, r := range rows {
				if len(r.Value) == 0 || skip(r.Value) {
					continue
				}
				v := Sealed{Table: c.table, Column: c.column, ID: r.ID, Value: r.Value}
				if c.aad {
					v.AAD = []byte(r.ID)
				}
				if err := fn(v); err != nil {
					return err
				}
			}
			if len(rows) < 500 {
				break
			}
			after = rows[len(rows)-1].ID
		}
	}
	return nil
}

// ErrChanged is returned by ReplaceSealed when the value changed meanwhile.
var ErrChanged = errors.New("changed meanwhile")

// ReplaceSealed writes a re-sealed value where old was, only if old is still
// there (a compare-and-swap: a value changed meanwhile is left alone).
func (s *Store) ReplaceSealed(ctx context.Context, v Sealed, next []byte, keyID string) error {
	for _, c := range sealedColumns {
		if c.table != v.Table || (v.Column != "" && c.column != v.Column) {
			continue
		}
		q := s.db.NewUpdate().Table(c.table).Set(c.column+" = ?", next).Where("id = ?", v.ID).Where(c.column+" = ?", v.Value)
		if c.table == "secrets" {
			q = q.Set("key_id = ?", keyID)
		}
		res, err := q.Exec(ctx)
		if err != nil {
			return fmt.Errorf("re-seal %s %s: %w", v.Table, v.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrChanged
		}
		return nil
	}
	return fmt.Errorf("re-seal: unknown table %q", v.Table)
}

// CountSealedByKey counts the sealed values under each key id ("" for
// values sealed before key ids).
func (s *Store) CountSealedByKey(ctx context.Context, keyOf func([]byte) string) (map[string]int, error) {
	out := map[string]int{}
	err := s.SealedValues(ctx, func([]byte) bool { return false }, func(v Sealed) error {
		out[keyOf(v.Value)]++
		return nil
	})
	return out, err
}
