package dockertest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/registry"
	"golang.org/x/crypto/bcrypt"
)

// Registry is a running docker-registry (distribution) on 127.0.0.1.
type Registry struct {
	// Addr is "127.0.0.1:PORT", the host part of image references.
	Addr string
	// User and Password are the credential it asks for; empty when it
	// asks for none.
	User, Password string
}

// RegistryOptions configure StartRegistry.
type RegistryOptions struct {
	// User and Password, when set, put the registry behind htpasswd
	// (basic) authentication with this one account.
	User, Password string
}

// StartRegistry starts a registry for this test on a free port of
// 127.0.0.1, with its storage in a temporary directory; it is stopped at
// the test's end. It skips (or, with ARCADE_REQUIRE_DOCKER=1, fails) the
// test when docker-registry is missing.
func StartRegistry(tb testing.TB, opts RegistryOptions) *Registry {
	tb.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		skipOrFail(tb, fmt.Errorf("docker-registry not found: install docker-registry"))
	}
	dir := tb.TempDir()
	auth := ""
	if opts.User != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(opts.Password), bcrypt.MinCost)
		if err != nil {
			tb.Fatal(err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(opts.User+":"+string(hash)+"\n"), 0o600); err != nil {
			tb.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: arcade-test\n    path: %s\n", htpasswd)
	}
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			tb.Fatal(err)
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s`, filepath.Join(dir, "data"), addr, auth)
		cfgPath := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			tb.Fatal(err)
		}
		logf, err := os.Create(filepath.Join(dir, "registry.log"))
		if err != nil {
			tb.Fatal(err)
		}
		cmd := exec.Command(bin, "serve", cfgPath)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			logf.Close()
			tb.Fatalf("start docker-registry: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
		tb.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
		if err := waitHTTP(addr, exited); err == nil {
			return &Registry{Addr: addr, User: opts.User, Password: opts.Password}
		} else if attempt == 3 {
			log, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			tb.Fatalf("docker-registry: %v\n%s", err, tail(log, 2000))
		}
		_ = cmd.Process.Kill()
		<-exited
	}
}

// waitHTTP waits until the registry answers /v2/ (with any status).
func waitHTTP(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("exited")
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (r *Registry) auth(tb testing.TB) string {
	s, err := authconfig.Encode(registry.AuthConfig{Username: r.User, Password: r.Password, ServerAddress: r.Addr})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
