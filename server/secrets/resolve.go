package secrets

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-arcade/arcade/server/store"
)

// Finder is what a Resolver needs of the database.
type Finder interface {
	FindSecrets(ctx context.Context, q store.SecretQuery) (map[string]*store.Secret, error)
}

// Resolver gives server components the values of stored secrets by name,
// within the scopes they may use.
//
//	creds, err := resolver.Resolve(ctx, secrets.Scope{Pipeline: "deploy"}, "REGISTRY_USER", "REGISTRY_PASSWORD")
//
// A name found in several scopes resolves to the most specific one: the
// pipeline's, then the source repository's, then the global one.
type Resolver struct {
	db   Finder
	ring *Keyring
}

// NewResolver returns a resolver over db; ring opens the values (nil: no
// key, every resolution fails).
func NewResolver(db Finder, ring *Keyring) *Resolver { return &Resolver{db: db, ring: ring} }

// Scope is what a consumer may use: global secrets always, a pipeline's (by
// id or name) and a source repository's (normalized URL, see
// NormalizeRepo) when set. RunID stands for the source of a pipeline run
// when Source is empty.
type Scope struct {
	Pipeline string
	Source   string
	RunID    string
}

func (s Scope) String() string {
	parts := []string{"global"}
	if s.Pipeline != "" {
		parts = append(parts, "pipeline "+s.Pipeline)
	}
	switch {
	case s.Source != "":
		parts = append(parts, "source "+s.Source)
	case s.RunID != "":
		parts = append(parts, "the run's source")
	}
	return strings.Join(parts, ", ")
}

// ErrMissing is what a MissingError is (errors.Is).
var ErrMissing = errors.New("secret not found")

// MissingError names the secrets a resolution did not find in its scope.
type MissingError struct {
	Names []string
	Scope Scope
}

func (e *MissingError) Error() string {
	what := "secret " + e.Names[0]
	if len(e.Names) > 1 {
		what = "secrets " + strings.Join(e.Names, ", ")
	}
	return fmt.Sprintf("%s: not found (looked in: %s); set it with arcade secret set, or drop the reference", what, e.Scope)
}

// Is makes errors.Is(err, ErrMissing) hold.
func (e *MissingError) Is(target error) bool { return target == ErrMissing }

// Resolve returns the values of names in scope. Names it does not find make
// a *MissingError naming them all.
func (r *Resolver) Resolve(ctx context.Context, scope Scope, names ...string) (map[string]string, error) {
	if len(names) == 0 {
		return map[string]string{}, nil
	}
	if r.ring == nil {
		return nil, errors.New("secrets: this server has no secret key")
	}
	rows, err := r.db.FindSecrets(ctx, store.SecretQuery{Names: names, Pipeline: scope.Pipeline, Source: scope.Source, RunID: scope.RunID})
	if err != nil {
		return nil, err
	}
	var missing []string
	out := make(map[string]string, len(names))
	for _, n := range names {
		row := rows[n]
		if row == nil {
			if !slices.Contains(missing, n) {
				missing = append(missing, n)
			}
			continue
		}
		plain, err := r.ring.OpenValue(row.Value, []byte(row.ID))
		if err != nil {
			return nil, fmt.Errorf("secret %s (%s): %w", n, row.Scope, err)
		}
		out[n] = string(plain)
	}
	if len(missing) > 0 {
		return nil, &MissingError{Names: missing, Scope: scope}
	}
	return out, nil
}

// Value returns one secret's value in scope.
func (r *Resolver) Value(ctx context.Context, scope Scope, name string) (string, error) {
	vals, err := r.Resolve(ctx, scope, name)
	if err != nil {
		return "", err
	}
	return vals[name], nil
}
