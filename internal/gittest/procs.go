package gittest

import (
	"os"
	"path/filepath"
	"strings"
)

// ProcessesHolding lists the processes whose command line or environment
// holds s (what `ps` and /proc/PID/environ show), as "PID: where".
// Processes that cannot be read (another user's) are passed over.
func ProcessesHolding(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		for _, f := range []string{"cmdline", "environ"} {
			b, err := os.ReadFile(filepath.Join(d, f))
			if err == nil && strings.Contains(string(b), s) {
				out = append(out, filepath.Base(d)+": "+f+": "+strings.ReplaceAll(string(b), "\x00", " "))
			}
		}
	}
	return out
}
