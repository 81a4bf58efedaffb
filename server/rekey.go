package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-arcade/arcade/server/secrets"
	"github.com/go-arcade/arcade/server/store"
)

// RekeyOptions tune Rekey.
type RekeyOptions struct {
	// Wait bounds how long Rekey waits for every running replica to load
	// the new key, then to seal with it (default 2 minutes).
	Wait time.Duration
	// Out receives the steps, for people.
	Out io.Writer
}

// Rekey seals every secret in the database again under a new key, with no
// downtime:
//
//  1. a new key is added to the keyring file (or the key a rekey that
//     stopped halfway added is taken up again);
//  2. Rekey waits until every running replica holds it (replicas re-read
//     their keyring file every KeyringRefresh; replicas on other machines
//     need the file copied to them) — until then they could not open what
//     it seals;
//  3. the database names it primary, and Rekey waits until every replica
//     seals with it;
//  4. every sealed value under another key is sealed again under it (a
//     compare-and-swap per value: one changed meanwhile is left as its
//     writer left it).
//
// Old keys stay in the keyring (they open nothing any more); Rekey says
// which ones no value uses, so that the operator may remove them.
func Rekey(ctx context.Context, cfg Config, opts RekeyOptions, logger *slog.Logger) error {
	if opts.Wait <= 0 {
		opts.Wait = 2 * time.Minute
	}
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("server config: %w", err)
	}
	st, err := store.Open(ctx, cfg.DB, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	src := cfg.keySource()
	ring, err := OpenKeyring(ctx, cfg, st, logger)
	if err != nil {
		return err
	}
	primary, err := st.PrimaryKey(ctx)
	if err != nil {
		return err
	}
	ids := ring.IDs()
	if !slices.Contains(ids, primary) {
		return fmt.Errorf("the database names key %s primary, which this keyring (%s) lacks: run rekey with the keyring the servers use", primary, strings.Join(ids, ", "))
	}
	newID := ids[len(ids)-1]
	if newID == primary {
		key := secrets.GenerateKey()
		if err := secrets.AppendToRing(src.RingPath, key); err != nil {
			return err
		}
		newID = secrets.KeyID(key)
		if _, err := ring.Reload(); err != nil {
			return err
		}
		fmt.Fprintf(out, "added key %s to %s\n", newID, src.RingPath)
	} else {
		fmt.Fprintf(out, "taking up key %s, added to %s by an earlier rekey\n", newID, src.RingPath)
	}

	fmt.Fprintf(out, "waiting for every running server to hold key %s (copy %s to replicas on other machines)\n", newID, src.RingPath)
	if err := waitReplicas(ctx, st, opts.Wait, "hold key "+newID, func(r *store.KeyringReplica) bool {
		return slices.Contains(r.Keys(), newID)
	}); err != nil {
		return err
	}
	if err := st.SetPrimaryKey(ctx, newID); err != nil {
		return err
	}
	if err := ring.UsePrimary(newID); err != nil {
		return err
	}
	fmt.Fprintf(out, "key %s is the primary key; waiting for every running server to seal with it\n", newID)
	if err := waitReplicas(ctx, st, opts.Wait, "seal with key "+newID, func(r *store.KeyringReplica) bool {
		return r.Primary == newID
	}); err != nil {
		return err
	}

	resealed, changed, failed := 0, 0, 0
	var failures []string
	err = st.SealedValues(ctx, func(v []byte) bool { return secrets.KeyOf(v) == newID }, func(v store.Sealed) error {
		next, did, err := ring.Reseal(v.Value, v.AAD)
		if err != nil {
			failed++
			if len(failures) < 10 {
				failures = append(failures, fmt.Sprintf("%s %s: %v", v.Table, v.ID, err))
			}
			return nil
		}
		if !did {
			return nil
		}
		switch err := st.ReplaceSealed(ctx, v, next, newID); {
		case errors.Is(err, store.ErrChanged):
			changed++
		case err != nil:
			return err
		default:
			resealed++
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "re-sealed %d value(s) under key %s", resealed, newID)
	if changed > 0 {
		fmt.Fprintf(out, " (%d changed meanwhile, by their writers)", changed)
	}
	fmt.Fprintln(out)
	counts, err := st.CountSealedByKey(ctx, secrets.KeyOf)
	if err != nil {
		return err
	}
	var unused []string
	for _, id := range ring.IDs() {
		if id != newID && counts[id] == 0 {
			unused = append(unused, id)
		}
	}
	if len(unused) > 0 {
		fmt.Fprintf(out, "no value is sealed under key(s) %s any more: remove them from every replica's keyring (and secret_key / secret.key) when you wish\n",
			strings.Join(unused, ", "))
	}
	if failed > 0 {
		return fmt.Errorf("%d value(s) could not be opened to re-seal (under a key no keyring here holds?): %s", failed, strings.Join(failures, "; "))
	}
	var left []string
	for id, n := range counts {
		if id != newID && n > 0 {
			if id == "" {
				id = "(no key id)"
			}
			left = append(left, fmt.Sprintf("%s: %d", id, n))
		}
	}
	if len(left) > 0 {
		sort.Strings(left)
		return fmt.Errorf("values still sealed under other keys (%s): a replica sealed with an old key meanwhile? run rekey again", strings.Join(left, ", "))
	}
	return nil
}

// waitReplicas waits until every replica seen running holds to ok.
func waitReplicas(ctx context.Context, st *store.Store, wait time.Duration, what string, ok func(*store.KeyringReplica) bool) error {
	deadline := time.Now().Add(wait)
	for {
		// A replica that has not reported for a few refreshes is gone.
		rs, err := st.KeyringReplicas(ctx, time.Now().UTC().Add(-5*KeyringRefresh))
		if err != nil {
			return err
		}
		var behind []string
		for _, r := range rs {
			if !ok(r) {
				behind = append(behind, fmt.Sprintf("%s (replica %s)", r.Host, r.Replica))
			}
		}
		if len(behind) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s, these servers do not %s: %s; give them the keyring file and run rekey again",
				wait, what, strings.Join(behind, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
