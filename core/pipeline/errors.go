// Package pipeline is the pure logic of pipelines: the .arcade.yaml file,
// validation, the dependency graph of jobs, env merging, retry decisions and
// the run state machine. It does no I/O; the server stores and drives it.
//
// The pipeline definition is the API message jobv1.PipelineDetail, so a
// file and a CreatePipeline request are one and the same thing once parsed.
package pipeline

import (
	"fmt"
	"strconv"
)

// Error is a validation or parse error naming the field at fault, e.g.
// Field "stages[1].jobs[0].depends_on", and, when the definition came from
// YAML, the line (and the file, for an included one) it was written on.
type Error struct {
	Field  string
	Reason string
	// Line is 0 when unknown; File is "" for the pipeline's own file.
	Line int
	File string
}

func (e *Error) Error() string { return e.Field + e.Where() + ": " + e.Reason }

// Where is " (line N)" or " (FILE line N)" when the line is known.
func (e *Error) Where() string {
	switch {
	case e.Line <= 0:
		return ""
	case e.File != "":
		return fmt.Sprintf(" (%s line %d)", e.File, e.Line)
	}
	return fmt.Sprintf(" (line %d)", e.Line)
}

func errorf(field, format string, args ...any) *Error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

func jobField(stage, job int) string { return fmt.Sprintf("stages[%d].jobs[%d]", stage, job) }

func indexField(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }
