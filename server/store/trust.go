package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/uptrace/bun"
)

// TrustedLabel is a label (key=value) that makes the agents carrying it
// trusted.
type TrustedLabel struct {
	bun.BaseModel `bun:"table:trusted_labels"`

	Key   string `bun:"key,pk"`
	Value string `bun:"value,pk"`
}

func (l TrustedLabel) String() string { return l.Key + "=" + l.Value }

// AgentTrust says whether an agent is trusted and why ("" when not). Only
// labels an admin set count: an agent's own labels never make it trusted.
func AgentTrust(a *Agent, labels []TrustedLabel) (bool, string) {
	if a.TrustMarked {
		return true, "marked trusted by an admin"
	}
	for _, l := range labels {
		if v, ok := a.AdminLabels[l.Key]; ok && v == l.Value {
			return true, "trusted label " + l.String()
		}
	}
	return false, ""
}

// TrustedLabels returns the trusted labels, sorted.
func (s *Store) TrustedLabels(ctx context.Context) ([]TrustedLabel, error) {
	return trustedLabels(ctx, s.db)
}

func trustedLabels(ctx context.Context, db bun.IDB) ([]TrustedLabel, error) {
	var out []TrustedLabel
	if err := db.NewSelect().Model(&out).Order("key ASC", "value ASC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("trusted labels: %w", err)
	}
	return out, nil
}

// setTrusted recomputes an agent's Trusted from its mark, labels and the
// trusted labels read in tx.
func setTrusted(ctx context.Context, tx bun.IDB, a *Agent) error {
	labels, err := trustedLabels(ctx, tx)
	if err != nil {
		return err
	}
	a.Trusted, _ = AgentTrust(a, labels)
	return nil
}

// SetAgentTrust marks an agent (by id or name) trusted or not and returns it.
func (s *Store) SetAgentTrust(ctx context.Context, idOrName string, marked bool) (*Agent, error) {
	a := new(Agent)
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewSelect().Model(a).Where("id = ?", idOrName).WhereOr("name = ?", idOrName).Limit(1).
			Apply(s.lockRows).Scan(ctx); err != nil {
			return notFound(err)
		}
		a.TrustMarked = marked
		if err := setTrusted(ctx, tx, a); err != nil {
			return err
		}
		_, err := tx.NewUpdate().Model(a).Column("trust_marked", "trusted").WherePK().Exec(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("agent %s trust: %w", idOrName, err)
	}
	return a, nil
}

// SetTrustedLabels replaces the trusted labels and recomputes every agent's
// trust under lock (an agent changing its labels at the same time waits, or
// is waited for, and reads the labels as they end up). It returns the
// agents whose trust changed.
func (s *Store) SetTrustedLabels(ctx context.Context, labels []TrustedLabel) ([]*Agent, error) {
	var changed []*Agent
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		changed = nil
		if _, err := tx.NewDelete().Model((*TrustedLabel)(nil)).Where("1 = 1").Exec(ctx); err != nil {
			return err
		}
		if len(labels) > 0 {
			if _, err := tx.NewInsert().Model(&labels).Exec(ctx); err != nil {
				return err
			}
		}
		var agents []*Agent
		if err := tx.NewSelect().Model(&agents).Order("id ASC").Apply(s.lockRows).Scan(ctx); err != nil {
			return err
		}
		for _, a := range agents {
			was := a.Trusted
			a.Trusted, _ = AgentTrust(a, labels)
			if a.Trusted == was {
				continue
			}
			if _, err := tx.NewUpdate().Model(a).Column("trusted").WherePK().Exec(ctx); err != nil {
				return err
			}
			changed = append(changed, a)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("set trusted labels: %w", err)
	}
	return changed, nil
}

// TrustedAgents returns the trusted agents by name.
func (s *Store) TrustedAgents(ctx context.Context) ([]*Agent, error) {
	var out []*Agent
	if err := s.db.NewSelect().Model(&out).Where("trusted = ?", true).Order("name ASC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("trusted agents: %w", err)
	}
	return out, nil
}

// SetPipelineTrust allows a pipeline's runs (of branches, when given) on
// trusted agents, or not.
func (s *Store) SetPipelineTrust(ctx context.Context, idOrName string, allowed bool, branches []string) (*Pipeline, error) {
	p, err := s.GetPipeline(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	return s.ModifyPipeline(ctx, p.ID, func(p *Pipeline) error {
		p.TrustedAgents, p.TrustedBranches = allowed, slices.Clone(branches)
		if !allowed {
			p.TrustedBranches = nil
		}
		return nil
	})
}

// TrustedPipelines returns the pipelines allowed on trusted agents.
func (s *Store) TrustedPipelines(ctx context.Context) ([]*Pipeline, error) {
	var out []*Pipeline
	if err := s.db.NewSelect().Model(&out).Column("id", "name", "trusted_agents", "trusted_branches").
		Where("trusted_agents = ?", true).Order("name ASC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("trusted pipelines: %w", err)
	}
	return out, nil
}

// labelsChanged reports whether two label sets differ.
func labelsChanged(a, b map[string]string) bool { return !maps.Equal(a, b) }

// sortedLabels returns "k=v" strings in order.
func sortedLabels(labels []TrustedLabel) []string {
	out := make([]string, len(labels))
	for i, l := range labels {
		out[i] = l.String()
	}
	sort.Strings(out)
	return out
}
