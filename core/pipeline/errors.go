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
// Field "stages[1].jobs[0].depends_on".
type Error struct {
	Field  string
	Reason string
}

func (e *Error) Error() string { return e.Field + ": " + e.Reason }

func errorf(field, format string, args ...any) *Error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

func jobField(stage, job int) string { return fmt.Sprintf("stages[%d].jobs[%d]", stage, job) }

func indexField(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }
