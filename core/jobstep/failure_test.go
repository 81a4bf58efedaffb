package jobstep

import "testing"

func TestFailureRoundTrip(t *testing.T) {
	for _, c := range []struct{ step, cause string }{
		{"compile", "exit status 3"},
		{`say "hi": now`, `plugin x reported STATUS_FAILURE: "bad": yes`},
		{"step 2", ""},
	} {
		msg := Failure(c.step, c.cause)
		if step, cause := ParseFailure(msg); step != c.step || cause != c.cause {
			t.Errorf("ParseFailure(%q) = %q, %q; want %q, %q", msg, step, cause, c.step, c.cause)
		}
	}
	for _, msg := range []string{"exit status 3", `step "unterminated`, `step "x" no colon`, ""} {
		if step, cause := ParseFailure(msg); step != "" || cause != msg {
			t.Errorf("ParseFailure(%q) = %q, %q; want no step and the message", msg, step, cause)
		}
	}
}
