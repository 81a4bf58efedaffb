package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"
)

// Notify sends payload on a PostgreSQL notification channel (NOTIFY), to
// every server replica listening on the same database. On SQLite, where one
// server owns the database, it does nothing.
func (s *Store) Notify(ctx context.Context, channel, payload string) error {
	if !s.postgres {
		return nil
	}
	if err := pgdriver.Notify(ctx, s.db, channel, payload); err != nil {
		return fmt.Errorf("notify %s: %w", channel, err)
	}
	return nil
}

// NotifyAll sends payloads on channel in order, in one statement (one round
// trip); nothing on SQLite.
func (s *Store) NotifyAll(ctx context.Context, channel string, payloads []string) error {
	if !s.postgres || len(payloads) == 0 {
		return nil
	}
	_, err := s.db.ExecContext(ctx, "SELECT pg_notify(?, p) FROM unnest(?::text[]) WITH ORDINALITY AS t(p, n) ORDER BY n",
		channel, pgdialect.Array(payloads))
	if err != nil {
		return fmt.Errorf("notify %s: %w", channel, err)
	}
	return nil
}

// Listen delivers the payloads sent on a notification channel until ctx
// ends; the listening connection is re-established when it breaks. On
// SQLite the channel never delivers.
func (s *Store) Listen(ctx context.Context, channel string) (<-chan string, error) {
	out := make(chan string, 1024)
	if !s.postgres {
		go func() { <-ctx.Done(); close(out) }()
		return out, nil
	}
	ln := pgdriver.NewListener(s.db)
	if err := ln.Listen(ctx, channel); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen %s: %w", channel, err)
	}
	in := ln.Channel(pgdriver.WithChannelSize(1024))
	go func() {
		defer close(out)
		defer ln.Close()
		for {
			select {
			case n, ok := <-in:
				if !ok {
					return
				}
				if n.Channel != channel {
					continue // the listener's own pings
				}
				select {
				case out <- n.Payload:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
