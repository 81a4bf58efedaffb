package service

import (
	"slices"
	"testing"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/server/store"
)

func TestExplainSummary(t *testing.T) {
	on := &store.Agent{Online: true}
	off := &store.Agent{}
	fit := func(name string, matches, full bool, failed ...string) *jobv1.AgentFit {
		return &jobv1.AgentFit{AgentName: name, Matches: matches, Full: full, FailedTerms: failed}
	}
	tests := []struct {
		fits   []*jobv1.AgentFit
		agents []*store.Agent
		place  int
		want   string
	}{
		{[]*jobv1.AgentFit{fit("a", true, false)}, []*store.Agent{on}, 1, "next in queue: 1 agent matches with a free slot"},
		{[]*jobv1.AgentFit{fit("a", true, false), fit("b", true, false)}, []*store.Agent{on, on}, 3, "2 jobs ahead in the queue; 2 agents match with a free slot"},
		{[]*jobv1.AgentFit{fit("a", true, true), fit("b", true, true)}, []*store.Agent{on, on}, 1, "2 agents match but are full"},
		{[]*jobv1.AgentFit{fit("a", false, false, "gpu (exists): label missing"), fit("b", true, false)}, []*store.Agent{on, off}, 1,
			"no online agent matches: a: gpu (exists): label missing (1 agent matches but is offline or revoked)"},
		{nil, nil, 1, "no online agent matches"},
	}
	for _, tt := range tests {
		if got := summarize(tt.fits, tt.agents, tt.place); got != tt.want {
			t.Errorf("got %q\nwant %q", got, tt.want)
		}
	}
}

func TestMissingPlugins(t *testing.T) {
	uses := stepPlugins([]*agentv1.Step{{Uses: "go-lint@1.2.0"}, {Commands: []string{"make"}}, {Uses: "secret-scan"}, {Uses: "go-lint"}})
	if !slices.Equal(uses, []string{"go-lint", "secret-scan"}) {
		t.Fatalf("uses %v", uses)
	}
	for _, tt := range []struct {
		runs []string
		want []string
	}{
		{nil, nil}, {[]string{"*"}, nil}, {[]string{"go-lint"}, []string{"secret-scan"}}, {[]string{"-"}, []string{"go-lint", "secret-scan"}},
	} {
		if got := missingPlugins(uses, tt.runs); !slices.Equal(got, tt.want) {
			t.Errorf("runs %v: missing %v, want %v", tt.runs, got, tt.want)
		}
	}
}
