package pgtest

import (
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestDatabaseName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	for _, name := range []string{
		"TestX",
		"TestStore/Create_job#01",
		"Test/" + strings.Repeat("Ünïcode-λ ", 20),
		"",
	} {
		got := databaseName(name, 12345)
		if !valid.MatchString(got) || !strings.HasPrefix(got, "t12345") {
			t.Errorf("databaseName(%q) = %q", name, got)
		}
	}
	if got := databaseName("TestStore/Create", 7); got != "t7_teststore_create" {
		t.Errorf("got %q", got)
	}
}

func TestVersionOrder(t *testing.T) {
	var vs [][]int
	for _, s := range []string{"9.6", "15", "10", "16", "9.5"} {
		v, ok := parseVersion(s)
		if !ok {
			t.Fatalf("parseVersion(%q) failed", s)
		}
		vs = append(vs, v)
	}
	slices.SortFunc(vs, func(a, b []int) int { return compareVersions(b, a) })
	want := [][]int{{16}, {15}, {10}, {9, 6}, {9, 5}}
	if !slices.EqualFunc(vs, want, slices.Equal) {
		t.Errorf("order %v, want %v", vs, want)
	}
	if _, ok := parseVersion("main"); ok {
		t.Error("parseVersion accepted a non-version")
	}
}

// fakeTB records how Start ends a test.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper()      {}
func (f *fakeTB) Name() string { return "TestFake" }
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatal(args ...any) {
	f.failed = fmt.Sprint(args...)
	runtime.Goexit()
}

func startWith(tb *fakeTB) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(tb)
	}()
	<-done
}

func TestMissingBinaries(t *testing.T) {
	saved := lookupBinaries
	t.Cleanup(func() { lookupBinaries = saved })
	lookupBinaries = func() (binaries, error) { return binaries{}, errors.New("none here") }

	if Available() {
		t.Error("Available with no binaries")
	}

	t.Setenv(RequireEnv, "")
	tb := &fakeTB{}
	startWith(tb)
	if tb.skipped == "" || tb.failed != "" || !strings.Contains(tb.skipped, "not found") {
		t.Errorf("without %s: skipped %q, failed %q", RequireEnv, tb.skipped, tb.failed)
	}

	t.Setenv(RequireEnv, "1")
	tb = &fakeTB{}
	startWith(tb)
	if tb.failed == "" || tb.skipped != "" || !strings.Contains(tb.failed, "PostgreSQL binaries not found, and ARCADE_REQUIRE_POSTGRES=1") {
		t.Errorf("with %s=1: skipped %q, failed %q", RequireEnv, tb.skipped, tb.failed)
	}
}
