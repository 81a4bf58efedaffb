package registrycred

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	config := `{"auths": {"127.0.0.1:5000": {"auth": "` + b64("ci:pa:ss") + `"},
		"https://ghcr.io/": {"username": "bot", "password": "tok"},
		"https://index.docker.io/v1/": {"auth": "` + b64("hub:hubpass") + `"}}}`
	for _, c := range []struct {
		cred, host, user, pass string
	}{
		{"ci:secret", "127.0.0.1:5000", "ci", "secret"},
		{"  ci:sec:ret\n", "docker.io", "ci", "sec:ret"},
		{"ci:", "docker.io", "ci", ""},
		{config, "127.0.0.1:5000", "ci", "pa:ss"},
		{config, "ghcr.io", "bot", "tok"},
		{config, "docker.io", "hub", "hubpass"},
		{`{"auths": {"http://127.0.0.1:5000": {"auth": "` + b64("a:1") + `"}, "127.0.0.1:5000": {"auth": "` + b64("b:2") + `"}}}`, "127.0.0.1:5000", "b", "2"},
	} {
		got, err := Parse(c.cred, c.host)
		if err != nil || got.Username != c.user || got.Password != c.pass {
			t.Errorf("Parse(%.20q, %s) = %q %q, %v; want %s %s", c.cred, c.host, got.Username, got.Password, err, c.user, c.pass)
		}
	}
	for _, c := range []struct{ cred, want string }{
		{"", "empty"},
		{"no-colon-pa55", "want user:password"},
		{":nouser-pa55", "want user:password"},
		{"{not json pa55", "not a docker config JSON"},
		{`{"auths": {}}`, "no entry for 127.0.0.1:5000"},
		{`{"auths": {"127.0.0.1:5001": {"auth": "` + b64("x:pa55") + `"}}}`, "no entry for 127.0.0.1:5000"},
		{`{"auths": {"127.0.0.1:5000": {"auth": "%%pa55"}}}`, "not base64"},
		{`{"auths": {"127.0.0.1:5000": {"password": "pa55"}}}`, "no username"},
		{strings.Repeat("a", MaxBytes) + ":pa55", "more than"},
	} {
		_, err := Parse(c.cred, "127.0.0.1:5000")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%.30q) = %v, want %q", c.cred, err, c.want)
		} else if strings.Contains(err.Error(), "pa55") {
			t.Errorf("the error shows the credential: %v", err)
		}
	}
}

func TestCredentialPrintsNoPassword(t *testing.T) {
	c := Credential{Username: "ci", Password: "pa55word"}
	for _, f := range []string{"%v", "%s", "%+v", "%#v"} {
		if s := fmt.Sprintf(f, c); strings.Contains(s, "pa55word") || !strings.Contains(s, "ci") {
			t.Errorf("%s: %s", f, s)
		}
	}
}

func TestHost(t *testing.T) {
	for ref, want := range map[string]string{
		"golang:1.22":                   "docker.io",
		"library/golang":                "docker.io",
		"127.0.0.1:5000/team/app:1":     "127.0.0.1:5000",
		"ghcr.io/org/tool@sha256:abc":   "ghcr.io",
		"localhost/app":                 "localhost",
		"registry.example.com/a/b/c:v1": "registry.example.com",
	} {
		if got := Host(ref); got != want {
			t.Errorf("Host(%s) = %s, want %s", ref, got, want)
		}
	}
}

// FuzzParse: any input is refused or read, never panics, and an error never
// shows the password of a user:password credential.
func FuzzParse(f *testing.F) {
	f.Add("ci:secret", "127.0.0.1:5000")
	f.Add(`{"auths": {"https://ghcr.io/": {"username": "bot", "password": "tok"}}}`, "ghcr.io")
	f.Add(`{"auths": {"x": {"auth": "Y2k6cGE6c3M="}}}`, "x")
	f.Fuzz(func(t *testing.T, cred, host string) {
		c, err := Parse(cred, host)
		if err != nil {
			if _, pass, ok := strings.Cut(strings.TrimSpace(cred), ":"); ok && len(pass) >= 6 && !IsDockerConfig(cred) && strings.Contains(err.Error(), pass) {
				t.Fatalf("the error shows the password: %v", err)
			}
			return
		}
		if c.Username == "" {
			t.Fatalf("Parse(%q) accepted a credential with no username", cred)
		}
	})
}
