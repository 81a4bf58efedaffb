package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// APIToken is a named API token. Only the sha256 of the token is kept.
type APIToken struct {
	bun.BaseModel `bun:"table:api_tokens"`

	ID         string    `bun:"id,pk"`
	Name       string    `bun:"name,notnull,unique"`
	Owner      string    `bun:"owner,notnull"`
	Scope      string    `bun:"scope,notnull"`
	Hash       string    `bun:"hash,notnull,unique"`
	CreatedAt  time.Time `bun:"created_at,notnull"`
	ExpiresAt  time.Time `bun:"expires_at,nullzero"`
	LastUsedAt time.Time `bun:"last_used_at,nullzero"`
	RevokedAt  time.Time `bun:"revoked_at,nullzero"`
	CreatedBy  string    `bun:"created_by,notnull"`
	RevokedBy  string    `bun:"revoked_by,notnull"`
}

// Active reports whether the token is neither revoked nor expired at now.
func (t *APIToken) Active(now time.Time) bool {
	return t.RevokedAt.IsZero() && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt))
}

// CreateToken stores a new token; a taken name is ErrConflict.
func (s *Store) CreateToken(ctx context.Context, t *APIToken) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		n, err := tx.NewSelect().Model((*APIToken)(nil)).Where("name = ?", t.Name).Count(ctx)
		if err != nil {
			return fmt.Errorf("create token %s: %w", t.Name, err)
		}
		if n > 0 {
			return fmt.Errorf("create token: the name %q is taken: %w", t.Name, ErrConflict)
		}
		if _, err := tx.NewInsert().Model(t).Exec(ctx); err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("create token: the name %q is taken: %w", t.Name, ErrConflict)
			}
			return fmt.Errorf("create token %s: %w", t.Name, err)
		}
		return nil
	})
}

// TokenByHash finds the token whose sha256 is hash, active or not.
func (s *Store) TokenByHash(ctx context.Context, hash string) (*APIToken, error) {
	t := new(APIToken)
	if err := s.db.NewSelect().Model(t).Where("hash = ?", hash).Scan(ctx); err != nil {
		return nil, fmt.Errorf("find token: %w", notFound(err))
	}
	return t, nil
}

// GetToken loads a token by id, or else by name.
func (s *Store) GetToken(ctx context.Context, idOrName string) (*APIToken, error) {
	t := new(APIToken)
	if err := s.db.NewSelect().Model(t).Where("id = ?", idOrName).WhereOr("name = ?", idOrName).Limit(1).Scan(ctx); err != nil {
		return nil, fmt.Errorf("get token %s: %w", idOrName, notFound(err))
	}
	return t, nil
}

// ListTokens returns a page of tokens by name and how many match; inactive
// ones only with all.
func (s *Store) ListTokens(ctx context.Context, all bool, now time.Time, p Page) ([]*APIToken, int, error) {
	var out []*APIToken
	q := s.db.NewSelect().Model(&out).Order("name ASC").Offset(p.Offset)
	if !all {
		q = q.Where("revoked_at IS NULL").WhereGroup(" AND ", func(w *bun.SelectQuery) *bun.SelectQuery {
			return w.Where("expires_at IS NULL").WhereOr("expires_at > ?", now)
		})
	}
	if p.Limit > 0 {
		q = q.Limit(p.Limit)
	}
	total, err := q.ScanAndCount(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list tokens: %w", err)
	}
	return out, total, nil
}

// RevokeToken marks a token revoked (once: a revoked token keeps its first
// revocation) and returns it.
func (s *Store) RevokeToken(ctx context.Context, idOrName, by string, now time.Time) (*APIToken, error) {
	t := new(APIToken)
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewSelect().Model(t).Where("id = ?", idOrName).WhereOr("name = ?", idOrName).Limit(1).
			Apply(s.lockRows).Scan(ctx); err != nil {
			return notFound(err)
		}
		if !t.RevokedAt.IsZero() {
			return nil
		}
		t.RevokedAt, t.RevokedBy = now, by
		_, err := tx.NewUpdate().Model(t).Column("revoked_at", "revoked_by").WherePK().Exec(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("revoke token %s: %w", idOrName, err)
	}
	return t, nil
}

// TouchToken records a token's use.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	_, err := s.db.NewUpdate().Model((*APIToken)(nil)).Set("last_used_at = ?", at).Where("id = ?", id).Exec(ctx)
	if err != nil {
		return fmt.Errorf("record use of token %s: %w", id, err)
	}
	return nil
}
