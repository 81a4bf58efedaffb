package agent

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// A status message is cut to what the server takes, kept valid UTF-8
// without NUL.
func TestStatusMessage(t *testing.T) {
	long := strings.Repeat("é", maxStatusMessage)
	got := statusMessage(long)
	if len(got) > maxStatusMessage || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Errorf("long: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	if got := statusMessage("a\x00b\xffc"); got != "a\uFFFDb\uFFFDc" {
		t.Errorf("NUL and invalid UTF-8: %q", got)
	}
	if got := statusMessage("exit status 1"); got != "exit status 1" {
		t.Errorf("short: %q", got)
	}
}
