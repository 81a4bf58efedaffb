// Package jobstep is the pure logic of job steps: a step runs shell
// commands or calls a wasm plugin ("uses: NAME[@VERSION]" with "with:"
// parameters), and a job's steps run in order in one workspace. It parses
// the YAML form shared by pipeline files and job files, validates steps, and
// names the plugins a job needs.
package jobstep

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
)

// MaxSteps bounds the steps of one job.
const MaxSteps = 100

// Error is a validation error naming the field at fault, e.g.
// "steps[1].uses".
type Error struct {
	Field  string
	Reason string
}

func (e *Error) Error() string { return e.Field + ": " + e.Reason }

func errorf(field, format string, args ...any) *Error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

var (
	pluginName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	funcName   = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	versionRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+_-]*$`)
)

// ParseUses splits "NAME" or "NAME@VERSION".
func ParseUses(uses string) (name, version string, err error) {
	name, version, at := strings.Cut(strings.TrimSpace(uses), "@")
	switch {
	case name == "":
		return "", "", fmt.Errorf("names no plugin: want NAME or NAME@VERSION, got %q", uses)
	case !pluginName.MatchString(name):
		return "", "", fmt.Errorf("%q is not a plugin name (letters, digits, '.', '_', '-')", name)
	case at && version == "":
		return "", "", fmt.Errorf("empty version after @ in %q", uses)
	case at && !versionRe.MatchString(version):
		return "", "", fmt.Errorf("bad version %q (letters, digits, '.', '+', '_', '-')", version)
	}
	return name, version, nil
}

// Validate checks a job's steps; prefix is the field they live in
// ("steps", "stages[0].jobs[1].steps").
func Validate(prefix string, steps []*agentv1.Step) error {
	if len(steps) > MaxSteps {
		return errorf(prefix, "at most %d steps, got %d", MaxSteps, len(steps))
	}
	names := map[string]int{}
	for i, s := range steps {
		field := fmt.Sprintf("%s[%d]", prefix, i)
		if s == nil {
			return errorf(field, "must be set")
		}
		hasCmds, uses := len(s.GetCommands()) > 0, strings.TrimSpace(s.GetUses()) != ""
		switch {
		case hasCmds && uses:
			return errorf(field, "has both commands and uses: a step runs commands or calls one plugin")
		case !hasCmds && !uses:
			return errorf(field+".commands", "must not be empty: a step runs commands or calls a plugin (uses)")
		case !uses && len(s.GetWith()) > 0:
			return errorf(field+".with", "is only for a plugin step (uses)")
		case !uses && s.GetFunction() != "":
			return errorf(field+".function", "is only for a plugin step (uses)")
		}
		for k, c := range s.GetCommands() {
			if strings.TrimSpace(c) == "" {
				return errorf(fmt.Sprintf("%s.commands[%d]", field, k), "must not be empty")
			}
		}
		if uses {
			if _, _, err := ParseUses(s.GetUses()); err != nil {
				return errorf(field+".uses", "%v", err)
			}
		}
		for k := range s.GetWith() {
			if strings.TrimSpace(k) == "" {
				return errorf(field+".with", "has an empty key")
			}
		}
		if f := s.GetFunction(); f != "" && !funcName.MatchString(f) {
			return errorf(field+".function", "%q is not a function name", f)
		}
		if name := s.GetName(); name != "" {
			switch {
			case name != strings.TrimSpace(name) || strings.ContainsAny(name, "\n\t\x00"):
				return errorf(field+".name", "must not hold surrounding spaces or control characters: %q", name)
			case len(name) > 100:
				return errorf(field+".name", "must be at most 100 characters")
			}
			if prev, dup := names[name]; dup {
				return errorf(field+".name", "duplicate step name %q (also %s[%d])", name, prefix, prev)
			}
			names[name] = i
		}
		if t := s.GetTimeout(); t != nil {
			if err := t.CheckValid(); err != nil {
				return errorf(field+".timeout", "%v", err)
			}
			if t.AsDuration() < 0 {
				return errorf(field+".timeout", "must not be negative, got %s", t.AsDuration())
			}
		}
	}
	return nil
}

// Plugins lists the plugins the steps use, by name, sorted and once each.
func Plugins(steps []*agentv1.Step) []string {
	var out []string
	for _, s := range steps {
		if s.GetUses() == "" {
			continue
		}
		if name, _, err := ParseUses(s.GetUses()); err == nil && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Name is the step's name for logs: its own, else the plugin's, else
// "step N" (1-based).
func Name(s *agentv1.Step, index int) string {
	if s.GetName() != "" {
		return s.GetName()
	}
	if name, _, err := ParseUses(s.GetUses()); err == nil && s.GetUses() != "" {
		return name
	}
	return fmt.Sprintf("step %d", index+1)
}

// DefaultFunction is the function a plugin step calls when it names none:
// ci build, security scan, cd deploy, custom execute.
func DefaultFunction(kind string) string {
	switch strings.ToLower(kind) {
	case "ci":
		return "build"
	case "security":
		return "scan"
	case "cd":
		return "deploy"
	case "custom":
		return "execute"
	}
	return ""
}

// Covers reports whether an agent offering the plugins offered ("*" or
// nothing: any; "-": none) runs every plugin in needed.
func Covers(offered, needed []string) bool {
	return len(Missing(offered, needed)) == 0
}

// Missing lists the plugins of needed an agent offering offered lacks.
func Missing(offered, needed []string) []string {
	if len(needed) == 0 || len(offered) == 0 || slices.Contains(offered, "*") {
		return nil
	}
	var out []string
	for _, n := range needed {
		if !slices.Contains(offered, n) {
			out = append(out, n)
		}
	}
	return out
}

// Failure is the message of a job whose step name failed for cause, as
// agents report it: `step "NAME": CAUSE`. ParseFailure reads it back.
func Failure(name, cause string) string {
	return fmt.Sprintf("step %q: %s", name, cause)
}

// ParseFailure splits a job's message made by Failure into the failed
// step's name and the cause; a message of another form is all cause.
func ParseFailure(msg string) (step, cause string) {
	if rest, ok := strings.CutPrefix(msg, "step \""); ok {
		for i := 0; i < len(rest); i++ {
			switch rest[i] {
			case '\\':
				i++
			case '"':
				name, err := strconv.Unquote(`"` + rest[:i] + `"`)
				if after, ok := strings.CutPrefix(rest[i+1:], ": "); ok && err == nil {
					return name, after
				}
				return "", msg
			}
		}
	}
	return "", msg
}
