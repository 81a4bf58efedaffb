// Package registrycred reads a registry credential as it is stored in a
// secret — "user:password", or a docker config JSON (as `docker login`
// writes it) with an entry per registry — into the username and password
// for one registry. Container jobs (the image pull) and plugins pulled from
// an OCI registry read their credential here.
//
// No error of this package shows any part of the credential; callers say
// whose credential it was.
package registrycred

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// MaxBytes bounds a credential: a docker config with a few registries is a
// few hundred bytes.
const MaxBytes = 64 << 10

// DockerHub is the registry of image references that name none.
const DockerHub = "docker.io"

// Credential is a username and password for one registry. Printing it with
// %v, %s or %+v shows the username only.
type Credential struct {
	Username, Password string
}

// String shows the username, never the password.
func (c Credential) String() string { return c.Username + ":<redacted>" }

// GoString is String, for %#v.
func (c Credential) GoString() string { return c.String() }

// IsDockerConfig reports whether cred is a docker config JSON (it names its
// registries) rather than user:password (for one registry).
func IsDockerConfig(cred string) bool {
	return strings.HasPrefix(strings.TrimSpace(cred), "{")
}

// Parse reads cred for the registry host (as Host returns it, e.g.
// "127.0.0.1:5000" or "docker.io"). A docker config's entry for host is
// found by its key, whatever its scheme or path ("https://ghcr.io/",
// "https://index.docker.io/v1/" for docker.io).
func Parse(cred, host string) (Credential, error) {
	cred = strings.TrimSpace(cred)
	switch {
	case cred == "":
		return Credential{}, errors.New("empty (want user:password or a docker config JSON)")
	case len(cred) > MaxBytes:
		return Credential{}, fmt.Errorf("more than %d bytes", MaxBytes)
	case !IsDockerConfig(cred):
		user, pass, ok := strings.Cut(cred, ":")
		if !ok || user == "" || strings.ContainsAny(user, "\n\r") {
			return Credential{}, errors.New("want user:password or a docker config JSON")
		}
		return Credential{Username: user, Password: pass}, nil
	}
	var cfg struct {
		Auths map[string]struct {
			Auth     string `json:"auth"`
			Username string `json:"username"`
			Password string `json:"password"`
		} `json:"auths"`
	}
	if err := json.Unmarshal([]byte(cred), &cfg); err != nil {
		return Credential{}, errors.New("not a docker config JSON (nor user:password)")
	}
	want := normalize(host)
	key, found := "", false
	for _, k := range slices.Sorted(maps.Keys(cfg.Auths)) {
		// The exact key wins over one that only normalizes to host.
		if k == host || (!found && normalize(k) == want) {
			key, found = k, true
		}
	}
	if !found {
		return Credential{}, fmt.Errorf("the docker config has no entry for %s", host)
	}
	entry := cfg.Auths[key]
	c := Credential{Username: entry.Username, Password: entry.Password}
	if entry.Auth != "" {
		raw, err := base64.StdEncoding.DecodeString(entry.Auth)
		if err != nil {
			return Credential{}, fmt.Errorf("the auth of %s is not base64", host)
		}
		c.Username, c.Password, _ = strings.Cut(string(raw), ":")
	}
	if c.Username == "" {
		return Credential{}, fmt.Errorf("the entry for %s has no username", host)
	}
	return c, nil
}

// normalize turns a docker config key or a registry host into the host
// alone: no scheme, no path, Docker Hub's several names as one.
func normalize(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(strings.ToLower(s), "https://"), "http://")
	s, _, _ = strings.Cut(s, "/")
	switch s {
	case "index.docker.io", "registry-1.docker.io":
		return DockerHub
	}
	return s
}

// Host is the registry part of an image reference ("golang:1.22" is
// Docker Hub's, "127.0.0.1:5000/team/app" 127.0.0.1:5000's).
func Host(ref string) string {
	first, _, ok := strings.Cut(ref, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return first
	}
	return DockerHub
}
