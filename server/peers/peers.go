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
	// TokenRevoked: arg: id of a named API token revoked (its streams end).
	TokenRevoked = "token-revoked"
	// SecretChanged: arg: name of a stored secret created, changed or
	// deleted (plugins configured with it load again).
	SecretChanged = "secret-changed"
)

// PubSub is the notification channel of the database.
type PubSub interface {
	// NotifyAll sends payloads on channel in order, in one round trip.
	NotifyAll(ctx context.Context, channel string, payloads []string) error
	Listen(ctx context.Context, channel string) (<-chan string, error)
}

// Peers sends and receives messages between replicas.
type Peers struct {
	db  PubSub
	id  string
	log *slog.Logger
	// out holds messages for the sender (Run), which sends what has
	// gathered in one round trip: no caller waits for the database.
	out chan string
}

// maxBatch bounds the messages sent in one round trip.
const maxBatch = 512

// New returns the peers of this replica.
func New(db PubSub, logger *slog.Logger) *Peers {
	b := make([]byte, 8)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails
	return &Peers{db: db, id: hex.EncodeToString(b), log: logger, out: make(chan string, 8192)}
}

// Send tells the other replicas, in the order of the calls; failures are
// logged, not returned: a lost message delays a wake-up until the next
// poll, it loses nothing. It does not wait for the database unless the
// sender is far behind.
func (p *Peers) Send(ctx context.Context, kind, arg string) {
	msg := p.id + " " + kind + " " + arg
	select {
	case p.out <- msg:
	default:
		p.send(context.WithoutCancel(ctx), []string{msg})
	}
}

func (p *Peers) send(ctx context.Context, batch []string) {
	if err := p.db.NotifyAll(ctx, Channel, batch); err != nil {
		p.log.Warn("tell other replicas", "messages", len(batch), "err", err)
	}
}

// sendLoop sends queued messages until ctx ends, then what is left.
func (p *Peers) sendLoop(ctx context.Context) {
	batch := make([]string, 0, maxBatch)
	for {
		select {
		case m := <-p.out:
			batch = append(batch[:0], m)
		gather:
			for len(batch) < maxBatch {
				select {
				case m := <-p.out:
					batch = append(batch, m)
				default:
					break gather
				}
			}
			p.send(context.WithoutCancel(ctx), batch)
		case <-ctx.Done():
			for {
				select {
				case m := <-p.out:
					p.send(context.Background(), []string{m})
				default:
					return
				}
			}
		}
	}
}

// Run hands the other replicas' messages to handle until ctx ends.
func (p *Peers) Run(ctx context.Context, handle func(kind, arg string)) error {
	in, err := p.db.Listen(ctx, Channel)
	if err != nil {
		return err
	}
	go p.sendLoop(ctx)
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
