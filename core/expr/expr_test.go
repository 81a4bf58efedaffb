package expr

import (
	"errors"
	"strings"
	"testing"
)

type ctx struct {
	Map
	hashed []string
}

func (c *ctx) HashFiles(p []string) (string, error) {
	c.hashed = append(c.hashed, p...)
	return "h" + strings.Join(p, "+"), nil
}

func TestEval(t *testing.T) {
	c := &ctx{Map: Map{
		"env.GOOS": "linux", "matrix.go": "1.22", "jobs.build.outputs.version": "1.4.0",
		"jobs.test.outputs.coverage": "81.5", "jobs.build.status": "success", "arcade.branch": "main",
		"jobs.build (linux).outputs.v": "x",
	}}
	for _, tc := range []struct{ src, want string }{
		{"env.GOOS", "linux"},
		{"env.GOOS == 'linux'", "true"},
		{"env.GOOS != \"linux\"", "false"},
		{"jobs.test.outputs.coverage >= 80", "true"},
		{"jobs.test.outputs.coverage < 9", "false"},
		{"'10' < '9'", "true"}, // text
		{"10 > 9", "true"},
		{"jobs.build.status == 'success' && arcade.branch == 'main'", "true"},
		{"!(arcade.branch == 'main') || env.NOPE", ""},
		{"env.NOPE || 'fallback'", "fallback"},
		{"contains(jobs.build.outputs.version, '.4')", "true"},
		{"startsWith(arcade.branch, 'ma') && endsWith(arcade.branch, 'in')", "true"},
		{"format('{0}-{1}-{{x}}', matrix.go, env.GOOS)", "1.22-linux-{x}"},
		{"join('/', 'a', env.GOOS, 3)", "a/linux/3"},
		{"upper(lower('MiX'))", "MIX"},
		{"${{ env.GOOS }}", "linux"},
		{"jobs['build (linux)'].outputs.v", "x"},
		{"'it''s'", "it's"},
		{"null == ''", "true"},
		{"true == 'true'", "false"},
		{"-1.5 < 0", "true"},
		{"hashFiles('go.sum', '**/go.mod')", "hgo.sum+**/go.mod"},
	} {
		x, err := Parse(tc.src)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.src, err)
			continue
		}
		v, err := x.Eval(c)
		if err != nil {
			t.Errorf("Eval(%q): %v", tc.src, err)
			continue
		}
		if v.Text() != tc.want {
			t.Errorf("Eval(%q) = %q, want %q", tc.src, v.Text(), tc.want)
		}
		again, err := Parse(x.String())
		if err != nil || again.String() != x.String() {
			t.Errorf("round trip of %q: %q, %v", tc.src, x.String(), err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"", "empty"},
		{"a ==", "unexpected end"},
		{"'open", "unterminated string"},
		{"a == b == c", "do not chain"},
		{"nope(1)", "unknown function nope"},
		{"contains(1)", "contains takes 2 argument(s)"},
		{"(a", "missing )"},
		{"a.", "must follow"},
		{"a[1]", "quoted name"},
		{"a $ b", "unexpected character"},
		{strings.Repeat("(", 40) + "a" + strings.Repeat(")", 40), "nested deeper"},
		{strings.Repeat("!", 40) + "a", "nested deeper"},
		{strings.Repeat("a", MaxSource+1), "longer than"},
	} {
		_, err := Parse(tc.src)
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%.40q) = %v, want an *Error with %q", tc.src, err, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		src   string
		where Where
		want  string // "" = allowed
	}{
		{"hashFiles('go.sum')", OnAgent, ""},
		{"hashFiles('go.sum')", OnServer, "hashFiles cannot be used on the server"},
		{"jobs.a.outputs.b", OnServer, ""},
		{"jobs.a.outputs.b", OnAgent, "cannot be read on the agent"},
		{"jobs.a.status", OnServer, ""},
		{"jobs.a.result", OnServer, "want jobs.JOB.outputs.NAME or jobs.JOB.status"},
		{"arcade.os", OnAgent, ""},
		{"arcade.os", OnServer, "known on the agent only"},
		{"arcade.nope", OnServer, "unknown name arcade.nope"},
		{"secrets.X", OnServer, "unknown name secrets.X"},
		{"env.A.B", OnServer, "want env.NAME"},
		{"matrix.os", AtExpansion, ""},
		{"env.A", AtExpansion, "cannot be read at matrix expansion"},
	} {
		x, err := Parse(tc.src)
		if err != nil {
			t.Fatal(err)
		}
		err = x.Check(tc.where)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Check(%q, %v): %v", tc.src, tc.where, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Check(%q, %v) = %v, want %q", tc.src, tc.where, err, tc.want)
		}
	}
}

func TestTemplate(t *testing.T) {
	c := &ctx{Map: Map{"arcade.os": "linux", "matrix.go": "1.22"}}
	tp, err := ParseTemplate("go-${{ arcade.os }}-${{ matrix.go }}-${{ hashFiles('go.sum') }}-${{ '}}' }}")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tp.Eval(c)
	if err != nil || got != "go-linux-1.22-hgo.sum-}}" {
		t.Fatalf("Eval = %q, %v", got, err)
	}
	part, err := tp.Partial(c, "matrix")
	if err != nil || part != "go-${{ arcade.os }}-1.22-${{ hashFiles('go.sum') }}-}}" {
		t.Fatalf("Partial = %q, %v", part, err)
	}
	if _, err := ParseTemplate("a ${{ b"); err == nil {
		t.Fatal("unclosed template parsed")
	}
	if err := tp.Check(OnServer); err == nil {
		t.Fatal("a template with hashFiles passed the server's check")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"a.b == 'c'", "!(x) || contains(a, 'b')", "format('{0}', 1.5)", "jobs['x y'].outputs.z >= -3", "${{ a }}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		x, err := Parse(src)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error of another type: %T %v", err, err)
			}
			return
		}
		canon := x.String()
		if len(canon) > MaxSource {
			return // its canonical form (quoted keys) outgrew the source bound
		}
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("canonical %q of %q does not parse: %v", canon, src, err)
		}
		if again.String() != canon {
			t.Fatalf("canonical form not stable: %q → %q", canon, again.String())
		}
		_ = x.Check(OnServer)
		v, err := x.Eval(&ctx{Map: Map{"a.b": "c"}})
		if err == nil && len(v.Text()) > MaxValue {
			t.Fatalf("value of %d bytes", len(v.Text()))
		}
	})
}

func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"go-${{ arcade.os }}-${{ hashFiles('go.sum') }}", "plain", "${{ '}}' }}x", "${{"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		tp, err := ParseTemplate(src)
		if err != nil {
			return
		}
		c := &ctx{Map: Map{"matrix.x": "1"}}
		if _, err := tp.Eval(c); err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error of another type: %T", err)
			}
		}
		out, err := tp.Partial(c, "matrix")
		if err != nil {
			return
		}
		if len(out) > MaxSource {
			return
		}
		again, err := ParseTemplate(out)
		if err != nil {
			t.Fatalf("partial %q of %q does not parse: %v", out, src, err)
		}
		// The partial form means what the template did.
		want, werr := tp.Eval(c)
		got, gerr := again.Eval(c)
		if werr == nil && (gerr != nil || got != want) {
			t.Fatalf("partial %q of %q evaluates to %q, %v; the template to %q", out, src, got, gerr, want)
		}
	})
}

// TestPartialKeepsValuesText: a matrix value that reads as "${{" (alone
// or beside the text around it) stays text after Partial: it is not
// evaluated when the rest of the template is filled in later.
func TestPartialKeepsValuesText(t *testing.T) {
	c := &ctx{Map: Map{"matrix.x": "${{ secrets.TOKEN }}", "matrix.empty": "", "matrix.brace": "{{ a }}", "matrix.q": "it's ${{", "secrets.TOKEN": "leaked"}}
	for _, tc := range []struct{ src, want string }{
		{"echo ${{ matrix.x }}", "echo ${{ secrets.TOKEN }}"},
		{"echo $${{ matrix.empty }}{{ b }}", "echo ${{ b }}"},
		{"echo $${{ matrix.brace }}", "echo ${{ a }}"},
		{"${{ matrix.q }} ${{ secrets.TOKEN }}", "it's ${{ leaked"},
		{"${{ '${{' }}", "${{"},
	} {
		tp, err := ParseTemplate(tc.src)
		if err != nil {
			t.Fatal(err)
		}
		part, err := tp.Partial(c, "matrix")
		if err != nil {
			t.Fatalf("Partial(%q): %v", tc.src, err)
		}
		again, err := ParseTemplate(part)
		if err != nil {
			t.Fatalf("Partial(%q) = %q does not parse: %v", tc.src, part, err)
		}
		got, err := again.Eval(c)
		if err != nil || got != tc.want {
			t.Errorf("Partial(%q) = %q, which evaluates to %q, %v; want %q", tc.src, part, got, err, tc.want)
		}
	}
	// Values that cannot read as "${{" are written as they are.
	tp, _ := ParseTemplate("go-${{ matrix.empty }}${{ matrix.brace }}-${{ env.X }}")
	if part, err := tp.Partial(c, "matrix"); err != nil || part != "go-{{ a }}-${{ env.X }}" {
		t.Errorf("Partial = %q, %v", part, err)
	}
}
