package host

import (
	"context"
	"net"
	"net/http/httptrace"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/gobwas/glob"
)

// hostGuard closes a gap in the kernel's http_request: the SDK checks the
// first URL against allowed_hosts, but its HTTP client follows redirects to
// any host. The guard sees every connection the call's requests open
// (httptrace GetConn, which also covers redirects) and cancels the call when
// one goes to a host that is not granted.
type hostGuard struct {
	allowed []glob.Glob
	exact   []string
	proxies []string // proxy hosts from the environment, reached on behalf of granted URLs
}

func newHostGuard(hosts []string) (*hostGuard, error) {
	g := &hostGuard{exact: hosts, proxies: envProxyHosts()}
	for _, h := range hosts {
		pat, err := glob.Compile(h)
		if err != nil {
			return nil, err
		}
		g.allowed = append(g.allowed, pat)
	}
	return g, nil
}

// permits applies the SDK's own rule: an exact name or a glob match.
func (g *hostGuard) permits(host string) bool {
	if slices.Contains(g.exact, host) || slices.Contains(g.proxies, host) {
		return true
	}
	for _, pat := range g.allowed {
		if pat.Match(host) {
			return true
		}
	}
	return false
}

// blockedHost is the cause a guarded call is canceled with.
type blockedHost struct{ host string }

func (b *blockedHost) Error() string { return "connection to " + b.host + " not granted" }

// watch returns a context for one call whose HTTP connections are checked,
// and a function that reports the host blocked, if any, and releases it.
func (g *hostGuard) watch(ctx context.Context) (context.Context, func() string) {
	ctx, cancel := context.WithCancelCause(ctx)
	var mu sync.Mutex
	var blocked string
	trace := &httptrace.ClientTrace{GetConn: func(hostPort string) {
		host, _, err := net.SplitHostPort(hostPort)
		if err != nil {
			host = hostPort
		}
		if !g.permits(host) {
			mu.Lock()
			if blocked == "" {
				blocked = host
			}
			mu.Unlock()
			cancel(&blockedHost{host: host})
		}
	}}
	ctx = httptrace.WithClientTrace(ctx, trace)
	return ctx, func() string {
		cancel(nil)
		mu.Lock()
		defer mu.Unlock()
		return blocked
	}
}

// envProxyHosts lists the proxy hosts named in the environment.
func envProxyHosts() []string {
	var out []string
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		v := os.Getenv(k)
		if v == "" {
			continue
		}
		if u, err := parseProxy(v); err == nil && u != "" {
			out = append(out, u)
		}
	}
	return out
}

func parseProxy(v string) (string, error) {
	if !strings.Contains(v, "://") {
		v = "http://" + v
	}
	u, err := url.Parse(v)
	if err != nil {
		return "", err
	}
	return u.Hostname(), nil
}
