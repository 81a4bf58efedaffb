package jobstep

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
)

// YAML is a step as pipeline files and job files write it: one of
//
//   - run: make test
//   - commands: [go vet ./..., go test ./...]
//   - uses: go-lint@1.0.0
//     with: {dir: /workspace/src}
//     function: lint
//
// each with an optional name and timeout.
type YAML struct {
	Name     string            `yaml:"name"`
	Run      string            `yaml:"run"`
	Commands []string          `yaml:"commands"`
	Uses     string            `yaml:"uses"`
	With     map[string]string `yaml:"with"`
	Function string            `yaml:"function"`
	Timeout  string            `yaml:"timeout"`
}

// Proto converts the step; field names it in errors ("steps[2]"). The
// meaning is checked by Validate.
func (y YAML) Proto(field string) (*agentv1.Step, error) {
	s := &agentv1.Step{Name: y.Name, Commands: y.Commands, Uses: y.Uses, With: y.With, Function: y.Function}
	if y.Run != "" {
		if len(y.Commands) > 0 {
			return nil, errorf(field, "has both run and commands: write one command with run, several with commands")
		}
		// A block scalar ends with a line break; the script does not need it.
		s.Commands = []string{strings.TrimRight(y.Run, "\n")}
	}
	if t := strings.TrimSpace(y.Timeout); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil {
			return nil, errorf(field+".timeout", "not a duration (like 90s or 10m): %q", y.Timeout)
		}
		s.Timeout = durationpb.New(d)
	}
	return s, nil
}

// FromYAML converts a list of steps written under prefix ("steps").
func FromYAML(prefix string, ys []YAML) ([]*agentv1.Step, error) {
	var out []*agentv1.Step
	for i, y := range ys {
		s, err := y.Proto(fieldIndex(prefix, i))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func fieldIndex(prefix string, i int) string {
	return fmt.Sprintf("%s[%d]", prefix, i)
}
