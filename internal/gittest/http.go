package gittest

import (
	"crypto/subtle"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// HTTP serves a Remote's repositories over git's smart HTTP protocol at
// URL + "/" + name + ".git". Private repositories need basic auth with
// User and Password (any user name when User is ""); public ones are open
// to all.
type HTTP struct {
	URL      string
	User     string
	Password string

	mu      sync.Mutex
	private map[string]bool
	// Requests counts the requests served, Denied those refused for
	// missing or wrong credentials.
	Requests, Denied atomic.Int64
	// Authorizations are the Authorization headers seen (to check that
	// a credential reached the server).
	Authorizations []string
	onRequest      func(*http.Request)
}

// OnRequest makes fn see each request before it is served (while the
// client's git processes are alive).
func (h *HTTP) OnRequest(fn func(*http.Request)) {
	h.mu.Lock()
	h.onRequest = fn
	h.mu.Unlock()
}

// ServeHTTP starts the HTTP server on a loopback port, stopped with the
// test.
func (r *Remote) ServeHTTP(user, password string) *HTTP {
	r.t.Helper()
	return r.ServeHTTPFor(r.t, user, password)
}

// ServeHTTPFor is ServeHTTP for a Remote made without New (a folder of
// repositories made otherwise), stopped with t.
func (r *Remote) ServeHTTPFor(t testing.TB, user, password string) *HTTP {
	t.Helper()
	r.t = t
	gitPath, err := exec.LookPath("git")
	if err != nil {
		r.t.Skip("git is not installed")
	}
	h := &HTTP{User: user, Password: password, private: map[string]bool{}}
	backend := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Env:  []string{"GIT_PROJECT_ROOT=" + r.Root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1"},
		// The Git-Protocol header reaches http-backend as HTTP_GIT_PROTOCOL
		// (protocol v2).
		InheritEnv: []string{"PATH"},
		Stderr:     io.Discard,
	}
	mux := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h.Requests.Add(1)
		h.mu.Lock()
		fn := h.onRequest
		h.mu.Unlock()
		if fn != nil {
			fn(req)
		}
		name := strings.TrimPrefix(req.URL.Path, "/")
		if i := strings.Index(name, ".git"); i >= 0 {
			name = name[:i]
		}
		u, p, ok := req.BasicAuth()
		h.mu.Lock()
		priv := h.private[name]
		if a := req.Header.Get("Authorization"); a != "" {
			h.Authorizations = append(h.Authorizations, a)
		}
		h.mu.Unlock()
		if priv && (!ok || subtle.ConstantTimeCompare([]byte(p), []byte(h.Password)) != 1 || (h.User != "" && u != h.User)) {
			h.Denied.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		if ok {
			req.Header.Set("Remote-User", u)
		}
		backend.ServeHTTP(w, req)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(l) //nolint:errcheck // closed at cleanup
	r.t.Cleanup(func() { srv.Close() })
	h.URL = "http://" + l.Addr().String()
	return h
}

// Private makes a repository need credentials.
func (h *HTTP) Private(name string) {
	h.mu.Lock()
	h.private[name] = true
	h.mu.Unlock()
}

// RepoURL is the clone URL of a repository.
func (h *HTTP) RepoURL(name string) string { return h.URL + "/" + name + ".git" }

// SawCredential reports whether any request carried basic auth.
func (h *HTTP) SawCredential() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.Authorizations) > 0
}
