package service

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	secretv1 "github.com/go-arcade/arcade/api/secret/v1"
	"github.com/go-arcade/arcade/server/auth"
	"github.com/go-arcade/arcade/server/peers"
	"github.com/go-arcade/arcade/server/secrets"
	"github.com/go-arcade/arcade/server/store"
)

// SecretServer implements secretv1.SecretServiceServer: stored secrets,
// whose values go in and never come out.
type SecretServer struct {
	secretv1.UnimplementedSecretServiceServer
	s *Service
}

// SecretServer returns the SecretService implementation.
func (s *Service) SecretServer() *SecretServer { return &SecretServer{s: s} }

// Bounds of stored secrets.
const (
	maxSecretValue       = 64 << 10
	maxSecretName        = 128
	maxSecretDescription = 512
	maxPipelineTarget    = 256
	maxSecretRefs        = 100
)

var secretName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validSecretName checks a secret's name (also the env name jobs see).
func validSecretName(field, name string) error {
	switch {
	case name == "":
		return invalid(field, "must not be empty")
	case len(name) > maxSecretName:
		return invalid(field, "longer than %d characters", maxSecretName)
	case !secretName.MatchString(name):
		return invalid(field, "%q is not a variable name (letters, digits and _, not starting with a digit)", name)
	}
	return nil
}

// secretScope reads a scope and its target as stored.
func secretScope(scope secretv1.SecretScope, target string) (string, string, error) {
	target = strings.TrimSpace(target)
	switch scope {
	case secretv1.SecretScope_SECRET_SCOPE_UNSPECIFIED, secretv1.SecretScope_SECRET_SCOPE_GLOBAL:
		if target != "" {
			return "", "", invalid("target", "a global secret has no target")
		}
		return store.ScopeGlobal, "", nil
	case secretv1.SecretScope_SECRET_SCOPE_PIPELINE:
		switch {
		case target == "":
			return "", "", invalid("target", "a pipeline secret names its pipeline")
		case len(target) > maxPipelineTarget || !utf8.ValidString(target) || strings.ContainsFunc(target, func(r rune) bool { return r < 0x20 }):
			return "", "", invalid("target", "not a pipeline name")
		}
		return store.ScopePipeline, target, nil
	case secretv1.SecretScope_SECRET_SCOPE_SOURCE:
		repo, err := secrets.NormalizeRepo(target)
		if err != nil {
			return "", "", invalid("target", "%v", err)
		}
		return store.ScopeSource, repo, nil
	}
	return "", "", invalid("scope", "unknown scope %d", scope)
}

func scopeProto(scope string) secretv1.SecretScope {
	switch scope {
	case store.ScopeGlobal:
		return secretv1.SecretScope_SECRET_SCOPE_GLOBAL
	case store.ScopePipeline:
		return secretv1.SecretScope_SECRET_SCOPE_PIPELINE
	case store.ScopeSource:
		return secretv1.SecretScope_SECRET_SCOPE_SOURCE
	}
	return secretv1.SecretScope_SECRET_SCOPE_UNSPECIFIED
}

func secretProto(sec *store.Secret) *secretv1.Secret {
	return &secretv1.Secret{
		Name: sec.Name, Scope: scopeProto(sec.Scope), Target: sec.Target, Description: sec.Description,
		Version: sec.Version, KeyId: sec.KeyID, CreatedAt: ts(sec.CreatedAt), UpdatedAt: ts(sec.UpdatedAt),
		CreatedBy: sec.CreatedBy, UpdatedBy: sec.UpdatedBy,
	}
}

// describeSecret names a secret in messages: "DEPLOY_KEY (pipeline deploy)".
func describeSecret(name, scope, target string) string {
	if scope == store.ScopeGlobal {
		return name + " (global)"
	}
	return fmt.Sprintf("%s (%s %s)", name, scope, target)
}

// actor names the caller for records: its token's name.
func actor(ctx context.Context) string {
	id := auth.FromContext(ctx)
	switch {
	case id.Name != "":
		return id.Name
	case id.Kind == auth.AgentCaller:
		return "agent " + id.AgentID
	}
	return "server"
}

func checkSecretValue(v string) error {
	switch {
	case v == "":
		return invalid("value", "must not be empty")
	case len(v) > maxSecretValue:
		return invalid("value", "longer than %d bytes", maxSecretValue)
	}
	return nil
}

func (s *Service) sealSecret(id, value string) ([]byte, error) {
	if s.cfg.Secrets == nil {
		return nil, grpcstatus.Error(codes.FailedPrecondition, "this server has no secret key")
	}
	sealed, err := s.cfg.Secrets.SealValue([]byte(value), []byte(id))
	if err != nil {
		return nil, grpcstatus.Errorf(codes.Internal, "seal secret: %v", err)
	}
	return sealed, nil
}

// CreateSecret implements SecretService.CreateSecret.
func (ss *SecretServer) CreateSecret(ctx context.Context, req *secretv1.CreateSecretRequest) (*secretv1.CreateSecretResponse, error) {
	s := ss.s
	if err := validSecretName("name", req.GetName()); err != nil {
		return nil, err
	}
	scope, target, err := secretScope(req.GetScope(), req.GetTarget())
	if err != nil {
		return nil, err
	}
	if err := checkSecretValue(req.GetValue()); err != nil {
		return nil, err
	}
	if len(req.GetDescription()) > maxSecretDescription {
		return nil, invalid("description", "longer than %d bytes", maxSecretDescription)
	}
	now, by := s.now(), actor(ctx)
	sec := &store.Secret{ID: newID(), Name: req.GetName(), Scope: scope, Target: target, Description: req.GetDescription(),
		Version: 1, CreatedAt: now, UpdatedAt: now, CreatedBy: by, UpdatedBy: by}
	if sec.Value, err = s.sealSecret(sec.ID, req.GetValue()); err != nil {
		return nil, err
	}
	sec.KeyID = secrets.KeyOf(sec.Value)
	if err := s.store.CreateSecret(ctx, sec); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, grpcstatus.Errorf(codes.AlreadyExists, "name: secret %s exists; update it to rotate its value", describeSecret(sec.Name, scope, target))
		}
		return nil, storeError(err, "secret")
	}
	s.log.Info("secret created", "secret", sec.Name, "scope", scope, "target", target, "by", by)
	s.secretChanged(ctx, sec.Name)
	return &secretv1.CreateSecretResponse{Secret: secretProto(sec)}, nil
}

// GetSecret implements SecretService.GetSecret.
func (ss *SecretServer) GetSecret(ctx context.Context, req *secretv1.GetSecretRequest) (*secretv1.GetSecretResponse, error) {
	if err := requireID("name", req.GetName()); err != nil {
		return nil, err
	}
	scope, target, err := secretScope(req.GetScope(), req.GetTarget())
	if err != nil {
		return nil, err
	}
	sec, err := ss.s.store.GetSecret(ctx, scope, target, req.GetName())
	if err != nil {
		return nil, storeError(err, "secret "+describeSecret(req.GetName(), scope, target))
	}
	return &secretv1.GetSecretResponse{Secret: secretProto(sec)}, nil
}

// ListSecrets implements SecretService.ListSecrets.
func (ss *SecretServer) ListSecrets(ctx context.Context, req *secretv1.ListSecretsRequest) (*secretv1.ListSecretsResponse, error) {
	p, err := page(req.GetPageSize(), req.GetPageToken(), "", []string{"name"}, store.Order{Column: "name"})
	if err != nil {
		return nil, err
	}
	var f store.SecretFilter
	if req.GetScope() != secretv1.SecretScope_SECRET_SCOPE_UNSPECIFIED || req.GetTarget() != "" {
		scope := req.GetScope()
		if scope == secretv1.SecretScope_SECRET_SCOPE_UNSPECIFIED {
			return nil, invalid("scope", "must be set with a target")
		}
		if f.Scope, f.Target, err = secretScope(scope, req.GetTarget()); err != nil {
			return nil, err
		}
	}
	list, total, err := ss.s.store.ListSecrets(ctx, f, p)
	if err != nil {
		return nil, storeError(err, "secrets")
	}
	resp := &secretv1.ListSecretsResponse{TotalSize: int32(total)}
	page := newPageBytes()
	for _, sec := range list {
		m := secretProto(sec)
		if !page.take(m) {
			break
		}
		resp.Secrets = append(resp.Secrets, m)
	}
	resp.NextPageToken = nextToken(p, len(resp.Secrets), total)
	return resp, nil
}

// UpdateSecret implements SecretService.UpdateSecret: a new value (rotation)
// and/or description. Jobs handed out from now on get the new value.
func (ss *SecretServer) UpdateSecret(ctx context.Context, req *secretv1.UpdateSecretRequest) (*secretv1.UpdateSecretResponse, error) {
	s := ss.s
	if err := requireID("name", req.GetName()); err != nil {
		return nil, err
	}
	scope, target, err := secretScope(req.GetScope(), req.GetTarget())
	if err != nil {
		return nil, err
	}
	if req.GetValue() == "" && req.Description == nil {
		return nil, invalid("value", "give a new value or a description")
	}
	if req.GetValue() != "" {
		if err := checkSecretValue(req.GetValue()); err != nil {
			return nil, err
		}
	}
	if len(req.GetDescription()) > maxSecretDescription {
		return nil, invalid("description", "longer than %d bytes", maxSecretDescription)
	}
	by := actor(ctx)
	sec, err := s.store.ModifySecret(ctx, scope, target, req.GetName(), func(sec *store.Secret) error {
		if v := req.GetValue(); v != "" {
			sealed, err := s.sealSecret(sec.ID, v)
			if err != nil {
				return err
			}
			sec.Value, sec.KeyID = sealed, secrets.KeyOf(sealed)
			sec.Version++
		}
		if req.Description != nil {
			sec.Description = req.GetDescription()
		}
		sec.UpdatedAt, sec.UpdatedBy = s.now(), by
		return nil
	})
	if err != nil {
		return nil, storeError(err, "secret "+describeSecret(req.GetName(), scope, target))
	}
	s.log.Info("secret updated", "secret", sec.Name, "scope", scope, "target", target, "version", sec.Version, "by", by)
	s.secretChanged(ctx, sec.Name)
	return &secretv1.UpdateSecretResponse{Secret: secretProto(sec)}, nil
}

// DeleteSecret implements SecretService.DeleteSecret.
func (ss *SecretServer) DeleteSecret(ctx context.Context, req *secretv1.DeleteSecretRequest) (*secretv1.DeleteSecretResponse, error) {
	s := ss.s
	if err := requireID("name", req.GetName()); err != nil {
		return nil, err
	}
	scope, target, err := secretScope(req.GetScope(), req.GetTarget())
	if err != nil {
		return nil, err
	}
	if _, err := s.store.DeleteSecret(ctx, scope, target, req.GetName()); err != nil {
		return nil, storeError(err, "secret "+describeSecret(req.GetName(), scope, target))
	}
	s.log.Info("secret deleted", "secret", req.GetName(), "scope", scope, "target", target, "by", actor(ctx))
	s.secretChanged(ctx, req.GetName())
	return &secretv1.DeleteSecretResponse{}, nil
}

// checkSecretRefs refuses references to stored secrets that do not exist
// in the scopes their user may reach: global ones, the pipeline's (by
// name, "" for none) and, with anySource, a source repository's (a
// pipeline does not name its repository yet: its runs do). field(i) names
// the reference in the error.
func (s *Service) checkSecretRefs(ctx context.Context, refs []string, pipeline string, anySource bool, field func(i int) string) error {
	if len(refs) == 0 {
		return nil
	}
	if len(refs) > maxSecretRefs {
		return invalid(field(maxSecretRefs), "more than %d secret references", maxSecretRefs)
	}
	for i, r := range refs {
		if err := validSecretName(field(i), r); err != nil {
			return err
		}
	}
	found, err := s.store.SecretNamesIn(ctx, refs, pipeline, anySource)
	if err != nil {
		return storeError(err, "secrets")
	}
	for i, r := range refs {
		if !found[r] {
			where := "global"
			if pipeline != "" {
				where += ", pipeline " + pipeline
			}
			if anySource {
				where += " or a source repository"
			}
			return invalid(field(i), "no secret named %s (looked in: %s); set it first with arcade secret set %s", r, where, r)
		}
	}
	return nil
}

// secretChanged loads again, here and on the other replicas, the plugins
// whose configuration takes a value from the secret.
func (s *Service) secretChanged(ctx context.Context, name string) {
	s.reloadSecretUsers(name)
	if s.peers != nil {
		s.peers.Send(ctx, peers.SecretChanged, name)
	}
}

func (s *Service) reloadSecretUsers(name string) {
	if s.plugins == nil {
		return
	}
	for _, p := range s.plugins.SecretUsers(name) {
		go func() {
			if err := s.plugins.Reload(context.Background(), p); err != nil {
				s.log.Warn("plugin not reloaded after its secret changed", "plugin", p, "secret", name, "err", err)
			}
		}()
	}
}
