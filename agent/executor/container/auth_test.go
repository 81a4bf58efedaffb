package container

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/moby/moby/api/pkg/authconfig"
)

func TestRegistryAuth(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	config := `{"auths": {"127.0.0.1:5000": {"auth": "` + b64([]byte("ci:pa:ss")) + `"},
		"https://ghcr.io/": {"username": "bot", "password": "tok"}}}`
	for _, c := range []struct {
		cred, ref, user, pass, host string
	}{
		{"ci:secret", "127.0.0.1:5000/team/app:1", "ci", "secret", "127.0.0.1:5000"},
		{"ci:secret", "golang:1.22", "ci", "secret", "docker.io"},
		{config, "127.0.0.1:5000/team/app:1", "ci", "pa:ss", "127.0.0.1:5000"},
		{config, "ghcr.io/org/tool", "bot", "tok", "ghcr.io"},
	} {
		enc, err := registryAuth(c.cred, c.ref)
		if err != nil {
			t.Fatalf("registryAuth(%s): %v", c.ref, err)
		}
		ac, err := authconfig.Decode(enc)
		if err != nil || ac.Username != c.user || ac.Password != c.pass || ac.ServerAddress != c.host {
			t.Errorf("registryAuth(%s) = %+v, %v", c.ref, ac, err)
		}
	}
	if enc, err := registryAuth("", "golang"); enc != "" || err != nil {
		t.Errorf("no credential: %q, %v", enc, err)
	}
	for _, bad := range []string{"no-colon", ":nouser", "{not json", `{"auths": {}}`} {
		_, err := registryAuth(bad, "127.0.0.1:5000/x")
		if err == nil {
			t.Errorf("registryAuth(%q) accepted", bad)
		} else if strings.Contains(err.Error(), "pa:ss") || strings.Contains(err.Error(), "nouser") {
			t.Errorf("the error shows the credential: %v", err)
		}
	}
}
