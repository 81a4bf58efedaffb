package pipeline

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/expr"
)

// What pipelines carry between jobs and around them: outputs, conditions
// (if:), artifacts of upstream jobs, caches, concurrency groups and
// approvals. Where each expression is evaluated:
//
//   - if:, env values and a job's concurrency group: by the server, when
//     the job is created (its dependencies done, their outputs known);
//   - a pipeline's concurrency group: by the server, when the run starts;
//   - cache.key and cache.restore_keys: by the agent, after the checkout
//     (they may hash workspace files);
//   - ${{ matrix.* }} parts of any job field: when the matrix is expanded.

// Bounds of a job's data.
const (
	MaxOutputs        = 64
	MaxNeedsArtifacts = 64
	MaxCachePaths     = 64
	MaxRestoreKeys    = 16
	// MaxOutputBytes bounds one job's outputs, names and values together.
	MaxOutputBytes = 64 << 10
)

// OutputName reports whether s may name an output: letters, digits, _ and
// -, not starting with a digit or -, at most 64 bytes.
func OutputName(s string) bool {
	if s == "" || len(s) > 64 || s[0] >= '0' && s[0] <= '9' || s[0] == '-' {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// upstreamOf is every job the node waits for, directly or through its
// depends_on or its stage barrier.
func (p *Plan) upstreamOf(n *Node) map[string]bool {
	up := map[string]bool{}
	seen := make([]bool, len(p.deps))
	stack := slices.Clone(p.deps[n.v])
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[v] {
			continue
		}
		seen[v] = true
		if int(v) < p.jobs {
			up[p.names[v]] = true
		}
		stack = append(stack, p.deps[v]...)
	}
	return up
}

// checkData checks the data features of an expanded pipeline.
func checkData(ctx context.Context, p *jobv1.PipelineDetail, plan *Plan) error {
	if c := p.GetConcurrency(); c != nil {
		if err := checkConcurrency("concurrency", c, nil, false); err != nil {
			return err
		}
	}
	for si, st := range p.GetStages() {
		for ji, j := range st.GetJobs() {
			field := jobField(si, ji)
			n := plan.Node(j.GetName())
			if err := checkJobData(field, j, n, plan); err != nil {
				return err
			}
			if (si+ji)%cancelCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func checkJobData(field string, j *jobv1.PipelineJob, n *Node, plan *Plan) error {
	// The jobs upstream, found once and only for a job that names some:
	// finding them walks the graph.
	var up map[string]bool
	upstream := func(name string) bool {
		if up == nil {
			up = plan.upstreamOf(n)
		}
		return up[name]
	}
	matrix := map[string]bool{}
	for _, v := range j.GetMatrixInstance().GetValues() {
		matrix[v.GetName()] = true
	}
	refs := func(f string, x *expr.Expr) error {
		for _, r := range x.Refs() {
			switch r.Path[0] {
			case "matrix":
				if !matrix[r.Path[1]] {
					if len(matrix) == 0 {
						return errorf(f, "%s: job %s has no matrix", strings.Join(r.Path, "."), j.GetName())
					}
					return errorf(f, "%s: the job's matrix has no value %s", strings.Join(r.Path, "."), r.Path[1])
				}
			case "jobs":
				name := r.Path[1]
				dep := plan.Node(name)
				if dep == nil {
					if g := plan.matrixGroup(name); len(g) > 0 {
						return errorf(f, "%s: %s is a matrix of %d jobs; name one, like jobs['%s']", strings.Join(r.Path, "."), name, len(g), g[0])
					}
					return errorf(f, "%s: unknown job %q", strings.Join(r.Path, "."), name)
				}
				if !upstream(name) {
					return errorf(f, "%s: job %s does not run before %s; add it to depends_on", strings.Join(r.Path, "."), name, j.GetName())
				}
				if r.Path[2] == "outputs" && !slices.Contains(dep.Job.GetOutputs(), r.Path[3]) {
					return errorf(f, "%s: job %s declares no output %q (outputs: %s)", strings.Join(r.Path, "."), name, r.Path[3], strings.Join(dep.Job.GetOutputs(), ", "))
				}
			}
		}
		return nil
	}
	serverTemplate := func(f, s string) error {
		t, err := expr.ParseTemplate(s)
		if err != nil {
			return errorf(f, "%v", err)
		}
		if err := t.Check(expr.OnServer); err != nil {
			return errorf(f, "%v", err)
		}
		for _, x := range t.Exprs() {
			if err := refs(f, x); err != nil {
				return err
			}
		}
		return nil
	}

	approval := j.GetType() == jobv1.JobType_JOB_TYPE_APPROVAL
	switch j.GetType() {
	case jobv1.JobType_JOB_TYPE_UNSPECIFIED, jobv1.JobType_JOB_TYPE_APPROVAL:
	default:
		return errorf(field+".type", "unknown job type %d", j.GetType())
	}
	if approval {
		for name, set := range map[string]bool{"image": j.GetImage() != "", "cache": j.GetCache() != nil,
			"outputs": len(j.GetOutputs()) > 0, "needs_artifacts": len(j.GetNeedsArtifacts()) > 0,
			"artifacts": len(j.GetArtifacts().GetPaths()) > 0, "services": len(j.GetContainer().GetServices()) > 0,
			"retry": j.GetRetry().GetMaxAttempts() > 1} {
			if set {
				return errorf(field+"."+name, "an approval job runs nothing: it has no %s", name)
			}
		}
	}

	if len(j.GetOutputs()) > MaxOutputs {
		return errorf(field+".outputs", "at most %d outputs", MaxOutputs)
	}
	for i, o := range j.GetOutputs() {
		f := indexField(field+".outputs", i)
		if !OutputName(o) {
			return errorf(f, "%q is not an output name (letters, digits, _ and -, not starting with a digit, at most 64)", o)
		}
		if slices.Index(j.GetOutputs(), o) != i {
			return errorf(f, "output %s is declared twice", o)
		}
	}

	if len(j.GetNeedsArtifacts()) > MaxNeedsArtifacts {
		return errorf(field+".needs_artifacts", "at most %d jobs", MaxNeedsArtifacts)
	}
	for i, name := range j.GetNeedsArtifacts() {
		f := indexField(field+".needs_artifacts", i)
		dep := plan.Node(name)
		switch {
		case dep == nil:
			return errorf(f, "unknown job %q", name)
		case !upstream(name):
			return errorf(f, "job %s does not run before %s; add it to depends_on", name, j.GetName())
		case len(dep.Job.GetArtifacts().GetPaths()) == 0:
			return errorf(f, "job %s keeps no artifacts (it has no artifacts.paths)", name)
		case slices.Index(j.GetNeedsArtifacts(), name) != i:
			return errorf(f, "job %s is named twice", name)
		}
	}

	if cond := strings.TrimSpace(j.GetIf()); cond != "" {
		x, err := expr.Parse(cond)
		if err != nil {
			return errorf(field+".if", "%v", err)
		}
		if err := x.Check(expr.OnServer); err != nil {
			return errorf(field+".if", "%v", err)
		}
		if err := refs(field+".if", x); err != nil {
			return err
		}
	}
	for k, v := range j.GetEnv() {
		if expr.HasExpr(v) {
			if err := serverTemplate(fmt.Sprintf("%s.env[%q]", field, k), v); err != nil {
				return err
			}
		}
	}
	if c := j.GetConcurrency(); c != nil {
		if err := checkConcurrency(field+".concurrency", c, refs, true); err != nil {
			return err
		}
	}

	if c := j.GetCache(); c != nil {
		if err := checkCache(field+".cache", c, refs); err != nil {
			return err
		}
	}

	// Expressions stay out of what a shell or a plugin reads: a value from
	// elsewhere goes through env, never into a command's text.
	noExpr := func(f, s string) error {
		if expr.HasExpr(s) {
			return errorf(f, "${{ }} here may read matrix values only; pass other values through env (env: {X: \"${{ … }}\"}, then $X)")
		}
		return nil
	}
	for i, c := range j.GetCommands() {
		if err := noExpr(indexField(field+".commands", i), c); err != nil {
			return err
		}
	}
	for i, st := range j.GetSteps() {
		for k, c := range st.GetCommands() {
			if err := noExpr(fmt.Sprintf("%s.steps[%d].commands[%d]", field, i, k), c); err != nil {
				return err
			}
		}
		for k, v := range st.GetWith() {
			if err := noExpr(fmt.Sprintf("%s.steps[%d].with[%q]", field, i, k), v); err != nil {
				return err
			}
		}
	}
	for k, v := range j.GetWith() {
		if err := noExpr(fmt.Sprintf("%s.with[%q]", field, k), v); err != nil {
			return err
		}
	}
	if err := noExpr(field+".image", j.GetImage()); err != nil {
		return err
	}
	return nil
}

func checkConcurrency(field string, c *jobv1.Concurrency, refs func(string, *expr.Expr) error, job bool) error {
	g := strings.TrimSpace(c.GetGroup())
	if g == "" {
		return errorf(field+".group", "must not be empty")
	}
	if len(g) > 256 {
		return errorf(field+".group", "at most 256 bytes")
	}
	t, err := expr.ParseTemplate(g)
	if err != nil {
		return errorf(field+".group", "%v", err)
	}
	if err := t.Check(expr.OnServer); err != nil {
		return errorf(field+".group", "%v", err)
	}
	for _, x := range t.Exprs() {
		for _, r := range x.Refs() {
			if r.Path[0] == "jobs" || !job && r.Path[0] == "matrix" {
				return errorf(field+".group", "%s cannot be read here: a group's name is known when the %s starts", strings.Join(r.Path, "."), map[bool]string{true: "job", false: "run"}[job])
			}
		}
		if refs != nil {
			if err := refs(field+".group", x); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkCache(field string, c *agentv1.CacheConfig, refs func(string, *expr.Expr) error) error {
	agentTemplate := func(f, s string) error {
		if strings.TrimSpace(s) == "" {
			return errorf(f, "must not be empty")
		}
		if len(s) > 512 {
			return errorf(f, "at most 512 bytes")
		}
		t, err := expr.ParseTemplate(s)
		if err != nil {
			return errorf(f, "%v", err)
		}
		if err := t.Check(expr.OnAgent); err != nil {
			return errorf(f, "%v", err)
		}
		for _, x := range t.Exprs() {
			if err := refs(f, x); err != nil {
				return err
			}
		}
		return nil
	}
	if err := agentTemplate(field+".key", c.GetKey()); err != nil {
		return err
	}
	if len(c.GetRestoreKeys()) > MaxRestoreKeys {
		return errorf(field+".restore_keys", "at most %d", MaxRestoreKeys)
	}
	for i, k := range c.GetRestoreKeys() {
		if err := agentTemplate(indexField(field+".restore_keys", i), k); err != nil {
			return err
		}
	}
	if len(c.GetPaths()) == 0 {
		return errorf(field+".paths", "must not be empty: name what the cache keeps")
	}
	if len(c.GetPaths()) > MaxCachePaths {
		return errorf(field+".paths", "at most %d paths", MaxCachePaths)
	}
	for i, p := range c.GetPaths() {
		f := indexField(field+".paths", i)
		if err := checkPath(f, p); err != nil {
			return err
		}
		if expr.HasExpr(p) {
			return errorf(f, "${{ }} in a cache path may read matrix values only")
		}
	}
	return nil
}

// matrixGroup lists the jobs a matrix job expanded into.
func (p *Plan) matrixGroup(name string) []string {
	var out []string
	for _, n := range p.Nodes {
		if n.Job.GetMatrixInstance().GetGroup() == name {
			out = append(out, n.Name)
		}
	}
	slices.Sort(out)
	return out
}

// checkPath checks a path a job names in its workspace.
func checkPath(f, p string) error {
	switch {
	case strings.TrimSpace(p) == "":
		return errorf(f, "must not be empty")
	case path.IsAbs(p) || strings.HasPrefix(p, "~"):
		return errorf(f, "must be relative to the job workspace, got %q", p)
	case p == ".." || strings.HasPrefix(p, "../") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/.."):
		return errorf(f, "must stay inside the job workspace, got %q", p)
	case strings.ContainsAny(p, "\x00\n") || len(p) > 1024:
		return errorf(f, "not a usable path: %q", p)
	}
	return nil
}

// FailFast lists the jobs a fail_fast matrix stops now: the combinations
// not final yet of each matrix with fail_fast one of whose combinations
// failed for good (failed, timed out; a retry to come is Active). Waiting
// ones are in the list too: they are not to start.
func (p *Plan) FailFast(outcomes map[string]Outcome) []string {
	failed := map[string]bool{}
	for _, n := range p.Nodes {
		mi := n.Job.GetMatrixInstance()
		if mi.GetFailFast() && outcomes[n.Name] == Failed {
			failed[mi.GetGroup()] = true
		}
	}
	if len(failed) == 0 {
		return nil
	}
	var out []string
	for _, n := range p.Nodes {
		if failed[n.Job.GetMatrixInstance().GetGroup()] && n.Job.GetMatrixInstance() != nil && !outcomes[n.Name].Done() {
			out = append(out, n.Name)
		}
	}
	return out
}
