// Package expr is the one expression language of pipelines: the conditions
// of jobs (if:), the values of env that read upstream outputs, concurrency
// group names, and cache keys. It is small on purpose: literals, names,
// comparison, logic and a fixed set of functions. It does no I/O: what an
// expression reads comes from a Context its caller supplies.
//
//	${{ jobs.build.outputs.version }}                  in a string: a template
//	jobs.test.outputs.coverage >= 80 && arcade.branch == 'main'   (if:)
//	go-${{ arcade.os }}-${{ hashFiles('go.sum', '**/go.mod') }}   (cache key)
//
// Values are strings, numbers, booleans and null. Names are dotted paths
// in one of the namespaces below; which namespaces and functions an
// expression may use depends on where it is evaluated (see Where):
//
//	env.NAME                    the job's env
//	matrix.AXIS                 the job's matrix values
//	jobs.JOB.outputs.KEY        an upstream job's output
//	jobs.JOB.status             an upstream job's outcome: success, failed, cancelled, skipped
//	arcade.pipeline, arcade.run_number, arcade.branch, arcade.trigger
//	arcade.os, arcade.arch      (on the agent only)
//
// Functions: contains, startsWith, endsWith (strings, case-sensitive),
// format('{0}-{1}', a, b), lower, upper, join(sep, a, b, …), and
// hashFiles(patterns…) (on the agent only: the sha256 of the workspace files
// matching the patterns, "" when none does).
package expr

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Bounds of one expression.
const (
	// MaxSource bounds an expression's (or a template's) text.
	MaxSource = 4096
	// MaxDepth bounds nesting (parentheses, operators, calls).
	MaxDepth = 32
	// MaxValue bounds a string an expression makes.
	MaxValue = 64 << 10
	// MaxArgs bounds a call's arguments.
	MaxArgs = 16
)

// Kind is the type of a value.
type Kind int

const (
	Null Kind = iota
	String
	Number
	Bool
)

// Value is the result of an expression.
type Value struct {
	Kind Kind
	Str  string
	Num  float64
	Bool bool
}

// Str makes a string value; Num a number; Boolean a boolean.
func Str(s string) Value       { return Value{Kind: String, Str: s} }
func Num(f float64) Value      { return Value{Kind: Number, Num: f} }
func Boolean(b bool) Value     { return Value{Kind: Bool, Bool: b} }
func (v Value) IsNull() bool   { return v.Kind == Null }
func (v Value) String() string { return v.Text() }

// Text is the value as a string, as a template writes it: null is "",
// numbers in their shortest form, booleans true/false.
func (v Value) Text() string {
	switch v.Kind {
	case String:
		return v.Str
	case Number:
		if v.Num == math.Trunc(v.Num) && math.Abs(v.Num) < 1e15 {
			return strconv.FormatInt(int64(v.Num), 10)
		}
		return strconv.FormatFloat(v.Num, 'g', -1, 64)
	case Bool:
		return strconv.FormatBool(v.Bool)
	}
	return ""
}

// Truthy is the value as a condition: false, null, "" and 0 are false.
func (v Value) Truthy() bool {
	switch v.Kind {
	case String:
		return v.Str != ""
	case Number:
		return v.Num != 0 && !math.IsNaN(v.Num)
	case Bool:
		return v.Bool
	}
	return false
}

// number reads a value as a number: strings that parse, booleans as 0/1,
// null as 0; NaN otherwise.
func (v Value) number() float64 {
	switch v.Kind {
	case Number:
		return v.Num
	case Bool:
		if v.Bool {
			return 1
		}
		return 0
	case Null:
		return 0
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v.Str), 64)
	if err != nil || strings.TrimSpace(v.Str) == "" {
		return math.NaN()
	}
	return f
}

// Where is where an expression is evaluated; it decides which namespaces
// and functions it may use.
type Where int

const (
	// OnServer: at job creation, by the server (if:, env values,
	// concurrency groups). Reads env, matrix, jobs and arcade (without os
	// and arch); no hashFiles.
	OnServer Where = iota
	// OnAgent: after checkout, by the agent (cache keys). Reads env,
	// matrix and arcade (with os and arch) and may call hashFiles; not
	// jobs.
	OnAgent
	// AtExpansion: when a matrix is expanded (job fields that take matrix
	// values). Reads matrix only.
	AtExpansion
)

func (w Where) String() string {
	switch w {
	case OnAgent:
		return "on the agent"
	case AtExpansion:
		return "at matrix expansion"
	}
	return "on the server at job creation"
}

// Context is what an evaluation reads.
type Context interface {
	// Lookup returns the value a name (its dotted path, split) has, and
	// whether it has one. A name without a value is null.
	Lookup(path []string) (Value, bool)
	// HashFiles returns the hash of the workspace files matching
	// patterns ("" when none). Only OnAgent contexts provide it.
	HashFiles(patterns []string) (string, error)
}

// Error is a parse or evaluation error, at a byte offset of the source.
type Error struct {
	Pos    int
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("at %d: %s", e.Pos, e.Reason) }

func errAt(pos int, format string, args ...any) *Error {
	return &Error{Pos: pos, Reason: fmt.Sprintf(format, args...)}
}
