package executor

import (
	"errors"
	"fmt"
	"strings"
)

func validate(spec Spec) error {
	if spec.Dir == "" {
		return errors.New("job directory not set")
	}
	for i, c := range spec.Commands {
		if strings.IndexByte(c, 0) >= 0 {
			return fmt.Errorf("command %d holds a NUL byte", i+1)
		}
	}
	for k, v := range spec.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("invalid environment variable %q", k)
		}
	}
	return nil
}

// script returns the shell script that runs commands, each after the
// markers that announce it on stdout and stderr.
func script(commands []string, nonce string) string {
	var b strings.Builder
	for i, c := range commands {
		marker := fmt.Sprintf("'%s%d'", markerPrefix(nonce)[1:], i+1)
		// A failed marker (the job closed its stdout, say) must not end
		// the job: "|| :".
		fmt.Fprintf(&b, "printf '\\036%%s\\n' %s 2>/dev/null || :\n", marker)
		fmt.Fprintf(&b, "printf '\\036%%s\\n' %s >&2 || :\n", marker)
		b.WriteString(c)
		b.WriteString("\n")
	}
	return b.String()
}
