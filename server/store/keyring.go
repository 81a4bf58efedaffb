package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// setting is a named value the replicas share.
type setting struct {
	bun.BaseModel `bun:"table:settings"`

	Name      string    `bun:"name,pk"`
	Value     string    `bun:"value,notnull"`
	UpdatedAt time.Time `bun:"updated_at,notnull"`
}

// primaryKeySetting names the key id every replica seals with.
const primaryKeySetting = "secret_primary_key"

// PrimaryKey returns the id of the key the replicas seal with, "" when none
// was chosen yet.
func (s *Store) PrimaryKey(ctx context.Context) (string, error) {
	var v []string
	if err := s.db.NewSelect().Model((*setting)(nil)).Column("value").Where("name = ?", primaryKeySetting).Scan(ctx, &v); err != nil {
		return "", fmt.Errorf("read primary key: %w", err)
	}
	if len(v) == 0 {
		return "", nil
	}
	return v[0], nil
}

// InitPrimaryKey records id as the primary key unless one is recorded, and
// returns the recorded one.
func (s *Store) InitPrimaryKey(ctx context.Context, id string) (string, error) {
	_, err := s.db.NewRaw(`INSERT INTO settings (name, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		primaryKeySetting, id, time.Now().UTC()).Exec(ctx)
	if err != nil {
		return "", fmt.Errorf("record primary key: %w", err)
	}
	return s.PrimaryKey(ctx)
}

// SetPrimaryKey makes id the key every replica seals with.
func (s *Store) SetPrimaryKey(ctx context.Context, id string) error {
	_, err := s.db.NewRaw(`INSERT INTO settings (name, value, updated_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at`,
		primaryKeySetting, id, time.Now().UTC()).Exec(ctx)
	if err != nil {
		return fmt.Errorf("set primary key: %w", err)
	}
	return nil
}

// KeyringReplica is what a running server says of its keyring: the keys it
// holds and the one it seals with, refreshed every few seconds.
type KeyringReplica struct {
	bun.BaseModel `bun:"table:keyring_replicas"`

	Replica string    `bun:"replica,pk"`
	Host    string    `bun:"host,notnull"`
	KeyIDs  string    `bun:"key_ids,notnull"` // comma-separated
	Primary string    `bun:"primary_key,notnull"`
	SeenAt  time.Time `bun:"seen_at,notnull"`
}

// Keys returns the key ids the replica holds.
func (r *KeyringReplica) Keys() []string {
	if r.KeyIDs == "" {
		return nil
	}
	return strings.Split(r.KeyIDs, ",")
}

// ReportKeyring records a replica's keyring.
func (s *Store) ReportKeyring(ctx context.Context, r *KeyringReplica) error {
	_, err := s.db.NewInsert().Model(r).On("CONFLICT (replica) DO UPDATE").
		Set("host = EXCLUDED.host").Set("key_ids = EXCLUDED.key_ids").Set("primary_key = EXCLUDED.primary_key").
		Set("seen_at = EXCLUDED.seen_at").Exec(ctx)
	if err != nil {
		return fmt.Errorf("report keyring: %w", err)
	}
	return nil
}

// ForgetKeyringReplica removes a replica's report (it stops).
func (s *Store) ForgetKeyringReplica(ctx context.Context, replica string) error {
	_, err := s.db.NewDelete().Model((*KeyringReplica)(nil)).Where("replica = ?", replica).Exec(ctx)
	return err
}

// KeyringReplicas returns the replicas seen since since.
func (s *Store) KeyringReplicas(ctx context.Context, since time.Time) ([]*KeyringReplica, error) {
	var out []*KeyringReplica
	if err := s.db.NewSelect().Model(&out).Where("seen_at >= ?", since).Order("replica ASC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("keyring replicas: %w", err)
	}
	return out, nil
}
