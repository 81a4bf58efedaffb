package jobstate

import (
	"errors"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		from, to Status
		ok       bool
	}{
		{Pending, Running, true},
		{Pending, Cancelled, true},
		{Pending, Success, false},
		{Running, Success, true},
		{Running, Failed, true},
		{Running, Timeout, true},
		{Running, Cancelled, true},
		{Running, Pending, true},
		{Running, Running, true},
		{Success, Running, false},
		{Failed, Pending, false},
		{Cancelled, Success, false},
		{Timeout, Failed, false},
	}
	for _, tt := range tests {
		err := Check(tt.from, tt.to)
		if (err == nil) != tt.ok {
			t.Errorf("Check(%s, %s) = %v, want ok=%v", Name(tt.from), Name(tt.to), err, tt.ok)
		}
		var te *TransitionError
		if err != nil && !errors.As(err, &te) {
			t.Errorf("Check(%s, %s) error %T is not a *TransitionError", Name(tt.from), Name(tt.to), err)
		}
	}
}

func TestShouldRetry(t *testing.T) {
	tests := []struct {
		s                Status
		attempt, retries int32
		want             bool
	}{
		{Failed, 1, 0, false},
		{Failed, 1, 1, true},
		{Failed, 2, 1, false},
		{Timeout, 1, 2, true},
		{Cancelled, 1, 5, false},
		{Success, 1, 5, false},
	}
	for _, tt := range tests {
		if got := ShouldRetry(tt.s, tt.attempt, tt.retries); got != tt.want {
			t.Errorf("ShouldRetry(%s, %d, %d) = %v, want %v", Name(tt.s), tt.attempt, tt.retries, got, tt.want)
		}
	}
}

func TestNameParse(t *testing.T) {
	for s := Pending; s <= Skipped; s++ {
		for _, name := range []string{Name(s), s.String()} {
			got, err := Parse(name)
			if err != nil || got != s {
				t.Errorf("Parse(%q) = %v, %v; want %v", name, got, err, s)
			}
		}
	}
	if _, err := Parse("bogus"); err == nil {
		t.Error("Parse(bogus) succeeded")
	}
}
