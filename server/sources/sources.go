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
	"path"
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
	// Limits bound a definition read from a repository, expanded with what
	// it includes, as the server's pipeline_limits bound one sent to it
	// (zero: the defaults).
	Limits pipeline.Limits
	Log    *slog.Logger
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
	at := o.Commit
	if o.Untrusted && o.BaseBranch != "" && (pipeline.FromRepository(spec) || len(spec.GetInclude()) > 0) {
		// A pull request from a fork runs the base branch's definition,
		// never the one it brings, nor the files it includes.
		base, _, err := resolve(ctx, mr, "refs/heads/"+o.BaseBranch)
		if err != nil {
			return fmt.Errorf("base branch %s of %s: %w", o.BaseBranch, src.GetUrl(), err)
		}
		at = base
	}
	if !pipeline.FromRepository(spec) {
		if o.Definition == "" {
			o.Definition = "stored pipeline"
		}
		if len(spec.GetInclude()) == 0 {
			return nil
		}
		// A stored definition with includes: read at the run's commit (a
		// fork's pull request: its base branch's head) and run expanded.
		def, err := s.expand(ctx, spec, mr, src, at, ".")
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			o.DefinitionError = fmt.Sprintf("pipeline %s at %.12s: %v", p.Name, at, err)
			// The run fails at once, with no job (like a broken file).
			none := proto.Clone(spec).(*jobv1.PipelineDetail)
			none.Include, none.IncludeFiles, none.Templates, none.Stages = nil, nil, nil, nil
			o.Spec = lifecycle.EncodeSpec(none)
			return nil
		}
		o.Definition = fmt.Sprintf("stored pipeline, includes at %.12s", at)
		if o.DefinitionApprovedBy != "" {
			o.Definition += fmt.Sprintf(" (pull request from a fork: its own, approved by %s)", o.DefinitionApprovedBy)
		}
		o.Spec = lifecycle.EncodeSpec(def)
		return nil
	}
	o.Definition = fmt.Sprintf("%s at %.12s", src.GetDefinitionPath(), at)
	if o.DefinitionApprovedBy != "" {
		o.Definition += fmt.Sprintf(" (pull request from a fork: its own definition, approved by %s)", o.DefinitionApprovedBy)
	}
	if at != o.Commit {
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
	// Its includes are read beside it, at the same commit.
	fctx, cancel := s.bound(ctx)
	defer cancel()
	def, err := FromFile(fctx, s.Limits, spec, p.Name, data, RepoFiles{Ctx: fctx, Mirror: mr, URL: src.GetUrl(), Commit: at, Dir: path.Dir(src.GetDefinitionPath())})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		o.DefinitionError = fmt.Sprintf("%s at %.12s is not a valid pipeline: %v", src.GetDefinitionPath(), at, err)
		return nil
	}
	o.Spec = lifecycle.EncodeSpec(def)
	return nil
}

// expand returns def expanded and validated, its includes read from the
// mirror at commit (relative to dir, the directory of the file that names
// them), within the server's git_timeout.
func (s *Sources) expand(ctx context.Context, def *jobv1.PipelineDetail, mr *gitcli.Mirror, src *jobv1.Source, commit, dir string) (*jobv1.PipelineDetail, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	def = proto.Clone(def).(*jobv1.PipelineDetail)
	def.IncludeFiles = nil
	plan, err := s.Limits.ValidateFiles(ctx, def, RepoFiles{Ctx: ctx, Mirror: mr, URL: src.GetUrl(), Commit: commit, Dir: dir})
	if err != nil {
		return nil, err
	}
	return plan.Spec, nil
}

// bound is ctx ended after the server's git_timeout, if it has one.
func (s *Sources) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.FetchTimeout > 0 {
		return context.WithTimeout(ctx, s.FetchTimeout)
	}
	return ctx, func() {}
}

// RepoFiles are the files of a repository's mirror at one commit, under
// Dir, as a pipeline's includes read them: each at most
// pipeline.MaxIncludeBytes.
type RepoFiles struct {
	Ctx    context.Context
	Mirror *gitcli.Mirror
	URL    string
	Commit string
	Dir    string
}

// ReadFile implements pipeline.Files.
func (f RepoFiles) ReadFile(name string) ([]byte, error) {
	return f.Mirror.ReadFile(f.Ctx, f.Commit, path.Join(f.Dir, name), pipeline.MaxIncludeBytes)
}

// Where implements pipeline.Located.
func (f RepoFiles) Where() string {
	if d := path.Clean(f.Dir); d != "." {
		return fmt.Sprintf("in %s at %.12s (under %s/, beside the file that includes it)", f.URL, f.Commit, d)
	}
	return fmt.Sprintf("in %s at %.12s", f.URL, f.Commit)
}

// CheckIncludes runs check (the validation of def, a stored definition with
// a source) with def's includes read from the repository at the head of
// the source's default branch (what a manual run would build now), within
// the server's git_timeout. A repository that cannot be fetched, or has no
// such branch, answers lifecycle.ErrFailedPrecondition. pipelineRef is the
// pipeline's id or name, for the scope of the source's credential.
func (s *Sources) CheckIncludes(ctx context.Context, pipelineRef string, def *jobv1.PipelineDetail, check func(pipeline.Files) error) error {
	src := def.GetSource()
	mr, err := s.mirror(ctx, &store.Pipeline{ID: pipelineRef}, src, "")
	if err != nil {
		return lifecycle.Refuse(lifecycle.ErrFailedPrecondition, "source: %v", err)
	}
	defer mr.Release()
	branch := src.GetDefaultBranch()
	if branch == "" {
		branch = DefaultBranch
	}
	head, _, err := resolve(ctx, mr, "refs/heads/"+branch)
	if err != nil {
		return lifecycle.Refuse(lifecycle.ErrFailedPrecondition, "source.default_branch: %s has no branch %s to read the included files from", src.GetUrl(), branch)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return check(RepoFiles{Ctx: ctx, Mirror: mr, URL: src.GetUrl(), Commit: head, Dir: "."})
}

// FromFile is the definition a run of stored follows when its file holds
// data: the file's stages, env and secrets, the stored pipeline's name,
// source and triggers (a file cannot change where it comes from or what
// starts it). It is validated within limits and returned expanded, its
// includes read from files (those of the repository, at the same commit,
// beside it).
func FromFile(ctx context.Context, limits pipeline.Limits, stored *jobv1.PipelineDetail, name string, data []byte, files pipeline.Files) (*jobv1.PipelineDetail, error) {
	def, err := pipeline.ParseYAML(data)
	if err != nil {
		return nil, err
	}
	def.Name, def.Triggers = name, stored.GetTriggers()
	def.Source = proto.Clone(stored.GetSource()).(*jobv1.Source)
	if len(def.GetStages()) == 0 && len(def.GetInclude()) == 0 {
		return nil, errors.New("stages: must not be empty: a pipeline has at least one stage")
	}
	def.IncludeFiles = nil
	plan, err := limits.ValidateFiles(ctx, def, files)
	if err != nil {
		return nil, err
	}
	if len(plan.Spec.GetStages()) == 0 {
		return nil, errors.New("stages: must not be empty: a pipeline has at least one stage (none in the file or what it includes)")
	}
	return plan.Spec, nil
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
