// Package sources is the server's side of pipelines that build a
// repository: it resolves the commit a run builds (the branch head at
// trigger time, or the commit a forge announced), reads a definition kept
// in the repository at that commit, and serves the forge webhooks
// (POST /hooks/{forge}: github, gitea, forgejo, gitlab) that start runs,
// with their filters on events, branches, tags and changed paths.
//
// Everything it learns of a repository comes from the server's own mirror
// of it (internal/gitcli.Mirrors, bounded on disk): push payloads cap their
// commit lists and pull request payloads list no files, so changed paths
// are `git diff --name-only` there (from the merge base, for a pull
// request), and a repository's definition file is read from it.
package sources

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/gitref"
	"github.com/go-arcade/arcade/core/pipeline"
	"github.com/go-arcade/arcade/internal/gitcli"
	"github.com/go-arcade/arcade/server/lifecycle"
	"github.com/go-arcade/arcade/server/secrets"
	"github.com/go-arcade/arcade/server/store"
)

// DefaultBranch is the branch of a source that names none.
const DefaultBranch = "main"

// MaxDefinition bounds a definition file read from a repository.
const MaxDefinition = 1 << 20

// MaxChangedFiles bounds the changed paths a filter looks at; a change of
// more files than that matches any path filter.
const MaxChangedFiles = 10000

// Credentials resolves stored secrets (server/secrets.Resolver).
type Credentials interface {
	Resolve(ctx context.Context, scope secrets.Scope, names ...string) (map[string]string, error)
}

// Sources prepares runs of pipelines with a source.
type Sources struct {
	Mirrors     *gitcli.Mirrors
	Credentials Credentials
	// FetchTimeout bounds one update of a mirror (0: none): a repository
	// that stalls fails what needed it, and frees the mirror.
	FetchTimeout time.Duration
	Log          *slog.Logger
}

// credential is the source's credential, or nil when it names none.
func (s *Sources) credential(ctx context.Context, p *store.Pipeline, src *jobv1.Source) (*gitcli.Auth, error) {
	if src.GetCredential() == "" {
		return nil, nil
	}
	scope := secrets.Scope{Pipeline: p.ID}
	if repo, err := secrets.NormalizeRepo(src.GetUrl()); err == nil {
		scope.Source = repo
	}
	vals, err := s.Credentials.Resolve(ctx, scope, src.GetCredential())
	if err != nil {
		return nil, fmt.Errorf("source credential: %w", err)
	}
	return gitcli.ParseAuth(vals[src.GetCredential()]), nil
}

// mirror opens the server's mirror of the pipeline's source, up to date
// for commit (fetched when it lacks it; with commit "" always fetched) and
// the extra refs.
func (s *Sources) mirror(ctx context.Context, p *store.Pipeline, src *jobv1.Source, commit string, extra ...string) (*gitcli.Mirror, error) {
	auth, err := s.credential(ctx, p, src)
	if err != nil {
		return nil, err
	}
	mr, err := s.Mirrors.Open(ctx, src.GetUrl())
	if err != nil {
		return nil, err
	}
	fctx, cancel := ctx, context.CancelFunc(func() {})
	if s.FetchTimeout > 0 {
		fctx, cancel = context.WithTimeout(ctx, s.FetchTimeout)
	}
	_, err = mr.Fetch(fctx, auth, commit, extra...)
	timedOut := fctx.Err() == context.DeadlineExceeded && ctx.Err() == nil
	cancel()
	if err != nil {
		mr.Release()
		if timedOut {
			return nil, fmt.Errorf("fetch %s: stopped after %s (the server's git_timeout)", src.GetUrl(), s.FetchTimeout)
		}
		return nil, fmt.Errorf("fetch %s: %w", src.GetUrl(), err)
	}
	return mr, nil
}

// Prepare implements lifecycle.Sources.
func (s *Sources) Prepare(ctx context.Context, p *store.Pipeline, o *lifecycle.RunOrigin) error {
	spec, err := lifecycle.DecodeSpec(p.Spec)
	if err != nil {
		return err
	}
	src := spec.GetSource()
	if src == nil {
		return nil
	}
	if o.Source == "" {
		o.Source = src.GetUrl()
	}
	var extra []string
	if r := o.Ref; strings.HasPrefix(r, "refs/") && !strings.HasPrefix(r, "refs/heads/") && !strings.HasPrefix(r, "refs/tags/") {
		extra = append(extra, r)
	}
	want := o.Commit
	if !gitcli.IsSHA(want) {
		want = ""
	}
	mr, err := s.mirror(ctx, p, src, want, extra...)
	if err != nil {
		return lifecycle.Refuse(lifecycle.ErrFailedPrecondition, "source: %v", err)
	}
	defer mr.Release()
	if o.Commit == "" {
		ref := o.Ref
		if ref == "" {
			ref = src.GetDefaultBranch()
			if ref == "" {
				ref = DefaultBranch
			}
		}
		commit, full, err := resolve(ctx, mr, ref)
		if err != nil {
			return lifecycle.Refuse(lifecycle.ErrInvalidArgument, "ref: %q names no branch, tag or commit of %s", ref, src.GetUrl())
		}
		o.Commit, o.Ref = commit, full
	} else if commit, err := mr.Resolve(ctx, o.Commit); err == nil {
		o.Commit = commit // an annotated tag's object peeled to its commit
	} else {
		return fmt.Errorf("commit %s is not in %s: %w", o.Commit, src.GetUrl(), err)
	}
	if b, ok := strings.CutPrefix(o.Ref, "refs/heads/"); ok && o.Branch == "" {
		o.Branch = b
	}
	if !pipeline.FromRepository(spec) {
		if o.Definition == "" {
			o.Definition = "stored pipeline"
		}
		return nil
	}
	at := o.Commit
	o.Definition = fmt.Sprintf("%s at %.12s", src.GetDefinitionPath(), at)
	if o.Untrusted && o.BaseBranch != "" {
		// A pull request from a fork runs the base branch's definition,
		// never the one it brings.
		base, _, err := resolve(ctx, mr, "refs/heads/"+o.BaseBranch)
		if err != nil {
			return fmt.Errorf("base branch %s of %s: %w", o.BaseBranch, src.GetUrl(), err)
		}
		at = base
		o.Definition = fmt.Sprintf("%s of base branch %s at %.12s (pull request from a fork)", src.GetDefinitionPath(), o.BaseBranch, at)
	}
	data, err := mr.ReadFile(ctx, at, src.GetDefinitionPath(), MaxDefinition)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			o.DefinitionError = fmt.Sprintf("%s: no such file at %.12s", src.GetDefinitionPath(), at)
		} else {
			o.DefinitionError = fmt.Sprintf("%s: %v", src.GetDefinitionPath(), err)
		}
		return nil
	}
	def, err := FromFile(spec, p.Name, data)
	if err != nil {
		o.DefinitionError = fmt.Sprintf("%s at %.12s is not a valid pipeline: %v", src.GetDefinitionPath(), at, err)
		return nil
	}
	o.Spec = lifecycle.EncodeSpec(def)
	return nil
}

// FromFile is the definition a run of stored follows when its file holds
// data: the file's stages, env and secrets, the stored pipeline's name,
// source and triggers (a file cannot change where it comes from or what
// starts it). It is validated.
func FromFile(stored *jobv1.PipelineDetail, name string, data []byte) (*jobv1.PipelineDetail, error) {
	def, err := pipeline.ParseYAML(data)
	if err != nil {
		return nil, err
	}
	def.Name, def.Triggers = name, stored.GetTriggers()
	def.Source = proto.Clone(stored.GetSource()).(*jobv1.Source)
	if len(def.GetStages()) == 0 {
		return nil, errors.New("stages: must not be empty: a pipeline has at least one stage")
	}
	if _, err := pipeline.Validate(def); err != nil {
		return nil, err
	}
	return def, nil
}

// resolve returns the commit and full ref a branch, tag, full ref or commit
// id names in the mirror.
func resolve(ctx context.Context, mr *gitcli.Mirror, ref string) (string, string, error) {
	if gitcli.IsSHA(ref) {
		c, err := mr.Resolve(ctx, ref)
		return c, "", err
	}
	if strings.HasPrefix(ref, "refs/") {
		c, err := mr.Resolve(ctx, ref)
		return c, ref, err
	}
	if err := gitref.CheckRefName(ref); err != nil {
		return "", "", err
	}
	for _, full := range []string{"refs/heads/" + ref, "refs/tags/" + ref} {
		if c, err := mr.Resolve(ctx, full); err == nil {
			return c, full, nil
		}
	}
	return "", "", gitcli.ErrNoCommit
}
