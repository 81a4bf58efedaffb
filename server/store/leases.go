package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// lease is a named lease held by one holder until it expires: periodic work
// that must run once across server replicas (the artifact sweep, the log
// archive, …) runs where the lease of its name is held.
type lease struct {
	bun.BaseModel `bun:"table:leases"`

	Name      string    `bun:"name,pk"`
	Holder    string    `bun:"holder,notnull"`
	ExpiresAt time.Time `bun:"expires_at,notnull"`
}

// TryAcquire takes or renews the lease name for holder for ttl and reports
// whether holder has it: true when no one held it, its holder let it
// expire, or holder already held it (renewal). One conditional upsert, so
// two replicas asking at once cannot both get it.
func (s *Store) TryAcquire(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	return s.TryAcquireAt(ctx, name, holder, time.Now(), ttl)
}

// TryAcquireAt is TryAcquire at the time now (replicas compare their own
// clocks: keep ttl well above their skew).
func (s *Store) TryAcquireAt(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	now = now.UTC()
	res, err := s.db.NewRaw(`INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= ?`, name, holder, now.Add(ttl), now).Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	return n == 1, nil
}

// Release gives up the lease name if holder holds it, so another replica
// may take it at once.
func (s *Store) Release(ctx context.Context, name, holder string) error {
	if _, err := s.db.NewDelete().Model((*lease)(nil)).Where("name = ?", name).Where("holder = ?", holder).Exec(ctx); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}
