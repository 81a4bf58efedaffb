// Package peers lets several server replicas on one PostgreSQL database act
// as one: a replica that creates work, asks for a cancel, stores log lines
// or publishes an event tells the others through LISTEN/NOTIFY, so agents
// and followers connected to any replica learn of it at once. With SQLite
// (one server) it does nothing.
package peers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strings"
)

// Channel is the notification channel replicas share.
const Channel = "arcade_peers"

// Kinds of messages.
const (
	Work   = "work"   // pending work may match an agent: wake the dispatchers
	Cancel = "cancel" // arg: agent id with a cancel to deliver
	Log    = "log"    // arg: job id whose log grew
	Event  = "event"  // arg: the event, protojson
	Revoke = "revoke" // arg: agent id whose token was revoked
)

// PubSub is the notification channel of the database.
type PubSub interface {
	Notify(ctx context.Context, channel, payload string) error
	Listen(ctx context.Context, channel string) (<-chan string, error)
}

// Peers sends and receives messages between replicas.
type Peers struct {
	db  PubSub
	id  string
	log *slog.Logger
}

// New returns the peers of this replica.
func New(db PubSub, logger *slog.Logger) *Peers {
	b := make([]byte, 8)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails
	return &Peers{db: db, id: hex.EncodeToString(b), log: logger}
}

// Send tells the other replicas; failures are logged, not returned: a lost
// message delays a wake-up until the next poll, it loses nothing.
func (p *Peers) Send(ctx context.Context, kind, arg string) {
	if err := p.db.Notify(context.WithoutCancel(ctx), Channel, p.id+" "+kind+" "+arg); err != nil {
		p.log.Warn("tell other replicas", "kind", kind, "err", err)
	}
}

// Run hands the other replicas' messages to handle until ctx ends.
func (p *Peers) Run(ctx context.Context, handle func(kind, arg string)) error {
	in, err := p.db.Listen(ctx, Channel)
	if err != nil {
		return err
	}
	go func() {
		for payload := range in {
			from, rest, _ := strings.Cut(payload, " ")
			if from == p.id {
				continue
			}
			kind, arg, _ := strings.Cut(rest, " ")
			handle(kind, arg)
		}
	}()
	return nil
}
