package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/expr"
)

// Expansion turns a definition as written into the pipeline that runs, in
// this order, before any limit is checked or any job planned:
//
//  1. include: the files named are read (from the pipeline's repository
//     at the run's commit when it has a source, given by the server as
//     Files; else from the files sent with the pipeline, include_files:
//     `arcade pipeline create` bundles those its file names, relative to
//     it), each expanded the
//     same way, and merged in order under the definition (later wins; the
//     definition itself last);
//  2. extends: each job starts from the templates it names, in order, and
//     its own fields win;
//  3. matrix: each job with a matrix becomes one job per combination,
//     named by its values, and a depends_on or needs_artifacts naming the
//     matrix job names all of its combinations.
//
// The merges follow one rule (merge.go). A pipeline once expanded has no
// include, templates, extends or matrix left: expanding it again changes
// nothing.

// Files reads the files a pipeline includes, by clean relative path.
// A missing file is an error matching fs.ErrNotExist.
type Files interface {
	ReadFile(name string) ([]byte, error)
}

// Located is Files that say where they are read from, for errors naming a
// missing file ("in https://host/repo.git at 0123456789ab").
type Located interface {
	Files
	Where() string
}

// MapFiles are files held in memory (the files sent with CreatePipeline).
type MapFiles map[string]string

// ReadFile implements Files.
func (m MapFiles) ReadFile(name string) ([]byte, error) {
	s, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return []byte(s), nil
}

// Bounds of expansion.
const (
	// MaxIncludes bounds the files one pipeline includes, all levels
	// together; MaxIncludeBytes the size of one.
	MaxIncludes     = 64
	MaxIncludeBytes = 1 << 20
	// MaxTemplates bounds a pipeline's templates, MaxExtends the
	// templates a job or template names.
	MaxTemplates = 256
	MaxExtends   = 16
	// MaxAxes bounds a matrix's axes, MaxAxisValues the values of one.
	MaxAxes       = 8
	MaxAxisValues = 256
	// DefaultMaxJobs is the number of jobs expansion may make when the
	// caller gives no limit.
	DefaultMaxJobs = 10_000
)

// Expanded is an expanded pipeline.
type Expanded struct {
	Pipeline *jobv1.PipelineDetail
	// source maps the field of each expanded job ("stages[0].jobs[3]")
	// to the job it came from, as written ("stages[0].jobs[1]").
	source map[string]string
}

// SourceField is where a field of the expanded pipeline was written: a
// matrix combination's field is its matrix job's.
func (e *Expanded) SourceField(field string) string {
	if e == nil || e.source == nil {
		return field
	}
	for exp, src := range e.source {
		if field == exp || strings.HasPrefix(field, exp+".") || strings.HasPrefix(field, exp+"[") {
			return src + field[len(exp):]
		}
	}
	return field
}

// Expanded reports whether p has nothing left to expand.
func IsExpanded(p *jobv1.PipelineDetail) bool {
	if len(p.GetInclude()) > 0 || len(p.GetTemplates()) > 0 {
		return false
	}
	for _, st := range p.GetStages() {
		for _, j := range st.GetJobs() {
			if len(j.GetExtends()) > 0 || j.GetMatrix() != nil {
				return false
			}
		}
	}
	return true
}

// Expand expands p, reading includes from files (nil: the files p carries
// in include_files), making at most maxJobs jobs (0: DefaultMaxJobs). An
// expanded p is returned as it is. Errors are *Error naming the field as
// written (an include's fields are prefixed with its path) or a
// *LimitError.
func Expand(p *jobv1.PipelineDetail, files Files, maxJobs int) (*Expanded, error) {
	if p == nil {
		return nil, errorf("pipeline", "must be set")
	}
	if IsExpanded(p) {
		return &Expanded{Pipeline: p}, nil
	}
	if maxJobs <= 0 {
		maxJobs = DefaultMaxJobs
	}
	if files == nil {
		files = MapFiles(p.GetIncludeFiles())
	}
	out, err := resolveIncludes(p, files)
	if err != nil {
		return nil, err
	}
	if err := applyTemplates(out); err != nil {
		return nil, err
	}
	src, err := expandMatrices(out, maxJobs)
	if err != nil {
		return nil, err
	}
	return &Expanded{Pipeline: out, source: src}, nil
}

// CleanIncludePath checks and cleans a path include names.
func CleanIncludePath(p string) (string, error) {
	c := path.Clean(strings.TrimSpace(p))
	switch {
	case strings.TrimSpace(p) == "":
		return "", errors.New("must not be empty")
	case len(p) > 1024 || strings.ContainsAny(p, "\x00\\\n"):
		return "", fmt.Errorf("not a usable path: %q", p)
	case path.IsAbs(c) || c == "." || c == ".." || strings.HasPrefix(c, "../"):
		return "", fmt.Errorf("want a path relative to the pipeline file's directory, inside it; got %q", p)
	}
	return c, nil
}

// resolveIncludes returns p with its includes merged under it.
func resolveIncludes(p *jobv1.PipelineDetail, files Files) (*jobv1.PipelineDetail, error) {
	count := 0
	var visit func(def *jobv1.PipelineDetail, prefix string, stack []string) (*jobv1.PipelineDetail, error)
	visit = func(def *jobv1.PipelineDetail, prefix string, stack []string) (*jobv1.PipelineDetail, error) {
		acc := &jobv1.PipelineDetail{}
		for i, inc := range def.GetInclude() {
			field := fmt.Sprintf("%sinclude[%d]", prefix, i)
			name, err := CleanIncludePath(inc)
			if err != nil {
				return nil, errorf(field, "%v", err)
			}
			if k := slices.Index(stack, name); k >= 0 {
				cycle := append(append([]string{"(pipeline)"}, stack...), name)
				return nil, errorf(field, "include cycle: %s", strings.Join(cycle, " → "))
			}
			if count++; count > MaxIncludes {
				return nil, errorf(field, "more than %d included files", MaxIncludes)
			}
			data, err := files.ReadFile(name)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				if l, ok := files.(Located); ok {
					return nil, errorf(field, "no such file %s %s", name, l.Where())
				}
				return nil, errorf(field, "no such file %s (included files are sent with the pipeline: arcade pipeline create and lint bundle them from beside its file)", name)
			case err != nil:
				return nil, errorf(field, "read %s: %v", name, err)
			case len(data) > MaxIncludeBytes:
				return nil, errorf(field, "%s is %d bytes, more than the limit of %d", name, len(data), MaxIncludeBytes)
			}
			sub, err := ParseYAML(data)
			if err != nil {
				var pe *Error
				if errors.As(err, &pe) {
					return nil, &Error{Field: name + ": " + pe.Field, Reason: pe.Reason, Line: pe.Line, File: name}
				}
				return nil, errorf(field, "%s: %v", name, err)
			}
			full, err := visit(sub, name+": ", append(stack, name))
			if err != nil {
				return nil, err
			}
			merge(acc, full)
		}
		self := proto.Clone(def).(*jobv1.PipelineDetail)
		self.Include, self.IncludeFiles = nil, nil
		merge(acc, self)
		return acc, nil
	}
	out, err := visit(p, "", nil)
	if err != nil {
		return nil, err
	}
	out.IncludeFiles = nil
	return out, nil
}

// applyTemplates resolves every job's extends and drops the templates.
func applyTemplates(p *jobv1.PipelineDetail) error {
	tpls := p.GetTemplates()
	if len(tpls) > MaxTemplates {
		return errorf("templates", "at most %d templates", MaxTemplates)
	}
	resolved := map[string]*jobv1.PipelineJob{}
	var resolve func(name, field string, stack []string) (*jobv1.PipelineJob, error)
	resolve = func(name, field string, stack []string) (*jobv1.PipelineJob, error) {
		if r, ok := resolved[name]; ok {
			return r, nil
		}
		if slices.Contains(stack, name) {
			return nil, errorf(field, "extends cycle: %s", strings.Join(append(stack, name), " → "))
		}
		t, ok := tpls[name]
		if !ok {
			return nil, errorf(field, "unknown template %q%s", name, known(tpls))
		}
		r, err := extend(t, "templates."+name, append(stack, name), resolve)
		if err != nil {
			return nil, err
		}
		resolved[name] = r
		return r, nil
	}
	for si, st := range p.GetStages() {
		for ji, j := range st.GetJobs() {
			if len(j.GetExtends()) == 0 {
				continue
			}
			r, err := extend(j, jobField(si, ji), nil, resolve)
			if err != nil {
				return err
			}
			st.Jobs[ji] = r
		}
	}
	p.Templates = nil
	return nil
}

func extend(j *jobv1.PipelineJob, field string, stack []string, resolve func(name, field string, stack []string) (*jobv1.PipelineJob, error)) (*jobv1.PipelineJob, error) {
	if len(j.GetExtends()) > MaxExtends {
		return nil, errorf(field+".extends", "at most %d templates", MaxExtends)
	}
	out := &jobv1.PipelineJob{}
	for i, name := range j.GetExtends() {
		t, err := resolve(name, indexField(field+".extends", i), stack)
		if err != nil {
			return nil, err
		}
		merge(out, t)
	}
	self := proto.Clone(j).(*jobv1.PipelineJob)
	self.Extends = nil
	merge(out, self)
	out.Extends = nil
	return out, nil
}

func known(tpls map[string]*jobv1.PipelineJob) string {
	if len(tpls) == 0 {
		return " (the pipeline has no templates)"
	}
	names := make([]string, 0, len(tpls))
	for n := range tpls {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) > 10 {
		names = append(names[:10], "…")
	}
	return "; templates: " + strings.Join(names, ", ")
}

// combination is one set of matrix values, in order.
type combination struct {
	values []*jobv1.MatrixValue
	// named: how many leading values name it (its axis values; values an
	// include adds to a combination do not rename it).
	named int
}

func (c combination) get(name string) (string, bool) {
	for _, v := range c.values {
		if v.GetName() == name {
			return v.GetValue(), true
		}
	}
	return "", false
}

// MatrixName is the name of a matrix combination: "build (linux, 1.22)".
func MatrixName(job string, values []*jobv1.MatrixValue) string {
	parts := make([]string, len(values))
	for i, v := range values {
		parts[i] = v.GetValue()
	}
	return job + " (" + strings.Join(parts, ", ") + ")"
}

// combinations lists a matrix's combinations.
func combinations(field string, m *jobv1.Matrix, maxJobs int) ([]combination, error) {
	axes := m.GetAxes()
	if len(axes) == 0 {
		return nil, errorf(field+".axes", "a matrix has at least one axis")
	}
	if len(axes) > MaxAxes {
		return nil, errorf(field+".axes", "at most %d axes", MaxAxes)
	}
	seen := map[string]bool{}
	total := 1
	for i, a := range axes {
		af := indexField(field+".axes", i)
		if !secretName(a.GetName()) {
			return nil, errorf(af+".name", "%q is not an axis name (letters, digits and _, not starting with a digit): it becomes an env variable", a.GetName())
		}
		if seen[a.GetName()] {
			return nil, errorf(af+".name", "axis %s is named twice", a.GetName())
		}
		seen[a.GetName()] = true
		if len(a.GetValues()) == 0 {
			return nil, errorf(af+".values", "an axis has at least one value")
		}
		if len(a.GetValues()) > MaxAxisValues {
			return nil, errorf(af+".values", "at most %d values", MaxAxisValues)
		}
		vs := map[string]bool{}
		for k, v := range a.GetValues() {
			if vs[v] {
				return nil, errorf(indexField(af+".values", k), "value %q is listed twice", v)
			}
			if strings.ContainsAny(v, "\x00\n") || len(v) > 256 {
				return nil, errorf(indexField(af+".values", k), "values are single lines of at most 256 bytes")
			}
			vs[v] = true
		}
		total *= len(a.GetValues())
		if total > maxJobs {
			return nil, &LimitError{Field: field, Limit: "pipeline_limits.jobs", Got: total, Max: maxJobs, What: "matrix combinations"}
		}
	}
	combos := []combination{{}}
	for _, a := range axes {
		next := make([]combination, 0, len(combos)*len(a.GetValues()))
		for _, c := range combos {
			for _, v := range a.GetValues() {
				vals := append(slices.Clone(c.values), &jobv1.MatrixValue{Name: a.GetName(), Value: v})
				next = append(next, combination{values: vals, named: len(vals)})
			}
		}
		combos = next
	}
	for i, ex := range m.GetExclude() {
		ef := indexField(field+".exclude", i)
		if len(ex.GetValues()) == 0 {
			return nil, errorf(ef, "an exclude entry names at least one axis")
		}
		for k := range ex.GetValues() {
			if !seen[k] {
				return nil, errorf(ef, "%q is not an axis of the matrix", k)
			}
		}
		n := len(combos)
		combos = slices.DeleteFunc(combos, func(c combination) bool {
			for k, v := range ex.GetValues() {
				if got, _ := c.get(k); got != v {
					return false
				}
			}
			return true
		})
		if len(combos) == n {
			return nil, errorf(ef, "matches no combination")
		}
	}
	for i, inc := range m.GetInclude() {
		ifield := indexField(field+".include", i)
		if len(inc.GetValues()) == 0 {
			return nil, errorf(ifield, "an include entry has at least one value")
		}
		keys := make([]string, 0, len(inc.GetValues()))
		for k, v := range inc.GetValues() {
			if !secretName(k) {
				return nil, errorf(ifield, "%q is not a matrix value name (letters, digits and _)", k)
			}
			if strings.ContainsAny(v, "\x00\n") || len(v) > 256 {
				return nil, errorf(ifield, "values are single lines of at most 256 bytes")
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		matched := false
		for ci := range combos {
			all := true
			for _, a := range axes {
				if v, ok := inc.GetValues()[a.GetName()]; !ok || v != mustGet(combos[ci], a.GetName()) {
					all = false
					break
				}
			}
			if all {
				matched = true
				for _, k := range keys {
					if !seen[k] {
						combos[ci].values = append(combos[ci].values, &jobv1.MatrixValue{Name: k, Value: inc.GetValues()[k]})
					}
				}
			}
		}
		if matched {
			continue
		}
		var c combination
		for _, a := range axes {
			if v, ok := inc.GetValues()[a.GetName()]; ok {
				c.values = append(c.values, &jobv1.MatrixValue{Name: a.GetName(), Value: v})
			}
		}
		c.named = len(c.values)
		for _, k := range keys {
			if !seen[k] {
				c.values = append(c.values, &jobv1.MatrixValue{Name: k, Value: inc.GetValues()[k]})
			}
		}
		if c.named == 0 {
			c.named = len(c.values)
		}
		combos = append(combos, c)
		if len(combos) > maxJobs {
			return nil, &LimitError{Field: field, Limit: "pipeline_limits.jobs", Got: len(combos), Max: maxJobs, What: "matrix combinations"}
		}
	}
	if len(combos) == 0 {
		return nil, errorf(field+".exclude", "leaves no combination")
	}
	names := map[string]bool{}
	for _, c := range combos {
		n := MatrixName("", c.values[:c.named])
		if names[n] {
			return nil, errorf(field+".include", "two combinations are named %s", n)
		}
		names[n] = true
	}
	return combos, nil
}

func mustGet(c combination, name string) string {
	v, _ := c.get(name)
	return v
}

// matrixContext is what matrix values read at expansion.
type matrixContext struct{ c combination }

func (m matrixContext) Lookup(p []string) (expr.Value, bool) {
	if len(p) == 2 && p[0] == "matrix" {
		if v, ok := m.c.get(p[1]); ok {
			return expr.Str(v), true
		}
	}
	return expr.Value{}, false
}

func (m matrixContext) HashFiles([]string) (string, error) {
	return "", errors.New("hashFiles is evaluated on the agent only")
}

// expandMatrices replaces each matrix job by its combinations and returns
// where each expanded job came from.
func expandMatrices(p *jobv1.PipelineDetail, maxJobs int) (map[string]string, error) {
	groups := map[string][]string{} // matrix job name → combination names
	total := 0
	for _, st := range p.GetStages() {
		total += len(st.GetJobs())
	}
	type plannedStage struct{ jobs []*jobv1.PipelineJob }
	source := map[string]string{}
	any := false
	newStages := make([]plannedStage, len(p.GetStages()))
	srcIndex := make([][]int, len(p.GetStages()))
	for si, st := range p.GetStages() {
		for ji, j := range st.GetJobs() {
			m := j.GetMatrix()
			if m == nil {
				newStages[si].jobs = append(newStages[si].jobs, j)
				srcIndex[si] = append(srcIndex[si], ji)
				continue
			}
			any = true
			field := jobField(si, ji) + ".matrix"
			combos, err := combinations(field, m, maxJobs)
			if err != nil {
				return nil, err
			}
			if total += len(combos) - 1; total > maxJobs {
				return nil, &LimitError{Field: field, Limit: "pipeline_limits.jobs", Got: total, Max: maxJobs, What: "jobs once matrices are expanded"}
			}
			for _, c := range combos {
				cj := proto.Clone(j).(*jobv1.PipelineJob)
				cj.Matrix = nil
				cj.Name = MatrixName(j.GetName(), c.values[:c.named])
				cj.MatrixInstance = &jobv1.MatrixInstance{Group: j.GetName(), Values: c.values, FailFast: m.GetFailFast()}
				if cj.Env == nil {
					cj.Env = map[string]string{}
				}
				for _, v := range c.values {
					cj.Env[v.GetName()] = v.GetValue()
				}
				if err := fillMatrix(cj.ProtoReflect(), jobField(si, ji), matrixContext{c}); err != nil {
					return nil, err
				}
				newStages[si].jobs = append(newStages[si].jobs, cj)
				srcIndex[si] = append(srcIndex[si], ji)
				groups[j.GetName()] = append(groups[j.GetName()], cj.Name)
			}
		}
	}
	if !any {
		return nil, nil
	}
	for si, st := range p.GetStages() {
		st.Jobs = newStages[si].jobs
		for k, j := range st.Jobs {
			if srcIndex[si][k] != k {
				source[jobField(si, k)] = jobField(si, srcIndex[si][k])
			} else if j.GetMatrixInstance() != nil {
				source[jobField(si, k)] = jobField(si, k)
			}
			j.DependsOn = expandNames(j.GetDependsOn(), groups)
			j.NeedsArtifacts = expandNames(j.GetNeedsArtifacts(), groups)
		}
	}
	return source, nil
}

// expandNames replaces each matrix job name by its combinations' names.
func expandNames(names []string, groups map[string][]string) []string {
	if len(names) == 0 {
		return names
	}
	var out []string
	for _, n := range names {
		if g, ok := groups[n]; ok {
			out = append(out, g...)
		} else {
			out = append(out, n)
		}
	}
	return out
}

// fillMatrix fills the matrix values into every string field of a job
// that holds ${{ }} parts reading only matrix values; other parts stay
// for the server or the agent.
func fillMatrix(m protoreflect.Message, field string, c matrixContext) error {
	var err error
	fill := func(s, f string) string {
		if err != nil || !expr.HasExpr(s) {
			return s
		}
		t, perr := expr.ParseTemplate(s)
		if perr != nil {
			err = errorf(f, "%v", perr)
			return s
		}
		out, perr := t.Partial(c, "matrix")
		if perr != nil {
			err = errorf(f, "%v", perr)
			return s
		}
		return out
	}
	var sets []func()
	defer func() {
		for _, set := range sets {
			set()
		}
	}()
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		f := field + "." + string(fd.Name())
		switch {
		case fd.Name() == "matrix_instance" || fd.Name() == "name":
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				if fd.Kind() == protoreflect.StringKind {
					l.Set(i, protoreflect.ValueOfString(fill(l.Get(i).String(), indexField(f, i))))
				} else if fd.Message() != nil {
					if e := fillMatrix(l.Get(i).Message(), indexField(f, i), c); e != nil && err == nil {
						err = e
					}
				}
			}
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.StringKind {
				mp := v.Map()
				mp.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					mp.Set(k, protoreflect.ValueOfString(fill(mv.String(), fmt.Sprintf("%s[%q]", f, k.String()))))
					return true
				})
			}
		case fd.Kind() == protoreflect.StringKind:
			filled := protoreflect.ValueOfString(fill(v.String(), f))
			sets = append(sets, func() { m.Set(fd, filled) })
		case fd.Message() != nil:
			if e := fillMatrix(v.Message(), f, c); e != nil && err == nil {
				err = e
			}
		}
		return err == nil
	})
	return err
}
