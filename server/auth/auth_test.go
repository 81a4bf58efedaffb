package auth

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func call(a *Authenticator, token, method string) error {
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+token))
	_, err := a.Authenticate(ctx, method)
	return err
}

func TestScopes(t *testing.T) {
	a := New("reg", "root", func(context.Context, string) (string, error) { return "", errors.New("no agent") })
	a.AddAPITokens(APIToken{Hash: Hash("reader"), Scope: Read}, APIToken{Hash: Hash("writer"), Scope: Write})
	tests := []struct {
		token, method string
		want          codes.Code
	}{
		{"reader", "/arcade.job.v1.JobService/ListJobs", codes.OK},
		{"reader", "/arcade.job.v1.StreamService/StreamJobLog", codes.OK},
		{"reader", "/arcade.job.v1.JobService/CreateJob", codes.PermissionDenied},
		{"reader", "/arcade.job.v1.JobService/ExplainJob", codes.OK},
		{"reader", "/arcade.plugin.v1.PluginService/CallPlugin", codes.PermissionDenied},
		{"writer", "/arcade.job.v1.JobService/CreateJob", codes.OK},
		{"writer", "/arcade.job.v1.JobService/TriggerPipeline", codes.OK},
		{"reader", "/arcade.job.v1.JobService/ApproveRunDefinition", codes.PermissionDenied},
		{"writer", "/arcade.job.v1.JobService/ApproveRunDefinition", codes.OK},
		{"writer", "/arcade.plugin.v1.PluginService/CallPlugin", codes.OK},
		{"writer", "/arcade.agent.v1.AgentService/RevokeAgent", codes.PermissionDenied},
		{"writer", "/arcade.agent.v1.AgentService/UpdateLabels", codes.PermissionDenied},
		{"writer", "/arcade.plugin.v1.PluginService/ReloadPlugin", codes.PermissionDenied},
		{"root", "/arcade.agent.v1.AgentService/RevokeAgent", codes.OK},
		{"root", "/arcade.agent.v1.AgentService/UpdateLabels", codes.OK},
		{"nobody", "/arcade.job.v1.JobService/ListJobs", codes.Unauthenticated},
		{"reader", "/arcade.agent.v1.AgentService/FetchJob", codes.Unauthenticated},
		{"", "/grpc.health.v1.Health/Check", codes.OK},
	}
	for _, tt := range tests {
		if got := status.Code(call(a, tt.token, tt.method)); got != tt.want {
			t.Errorf("%s calling %s: %v, want %v", tt.token, tt.method, got, tt.want)
		}
	}
}

func TestParseScope(t *testing.T) {
	for in, want := range map[string]Scope{"read": Read, "WRITE": Write, " admin ": Admin} {
		if got, err := ParseScope(in); err != nil || got != want {
			t.Errorf("ParseScope(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseScope("root"); err == nil {
		t.Error("ParseScope(root) succeeded")
	}
}

// TestAgentLookupOutage: an agent token that cannot be checked because the
// database is down is answered Unavailable (retry), not Unauthenticated,
// which would send the agent to register again.
func TestAgentLookupOutage(t *testing.T) {
	down := true
	a := New("reg", "root", func(_ context.Context, h string) (string, error) {
		if down {
			return "", fmt.Errorf("%w: connection refused", ErrNoAnswer)
		}
		if h == Hash("agent-token") {
			return "agent-1", nil
		}
		return "", errors.New("no agent holds it")
	})
	const method = "/arcade.agent.v1.AgentService/Heartbeat"
	if got := status.Code(call(a, "agent-token", method)); got != codes.Unavailable {
		t.Errorf("database down: %v, want Unavailable", got)
	}
	down = false
	if got := status.Code(call(a, "agent-token", method)); got != codes.OK {
		t.Errorf("database back: %v, want OK", got)
	}
	if got := status.Code(call(a, "someone-else", method)); got != codes.Unauthenticated {
		t.Errorf("unknown token: %v, want Unauthenticated", got)
	}
}
