package gittest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// SSH is an sshd serving a Remote's repositories to the holder of
// ClientKey, as the user running the test.
type SSH struct {
	Addr string
	User string
	// ClientKey is the private key (OpenSSH format) allowed to log in.
	ClientKey string
	root      string
}

// sshdPath is where Debian's openssh-server puts sshd.
var sshdPath = "/usr/sbin/sshd"

// ServeSSH starts sshd -D on a free loopback port with a throwaway host
// key and an authorized_keys holding one new client key, stopped with the
// test. Without sshd (or ssh-keygen) the test is skipped, unless
// ARCADE_REQUIRE_GIT_SSH=1.
func (r *Remote) ServeSSH() *SSH {
	r.t.Helper()
	missing := func(what string) {
		if os.Getenv("ARCADE_REQUIRE_GIT_SSH") == "1" {
			r.t.Fatalf("%s is missing and ARCADE_REQUIRE_GIT_SSH=1", what)
		}
		r.t.Skipf("%s is missing (install openssh-server)", what)
	}
	if _, err := os.Stat(sshdPath); err != nil {
		missing("sshd")
	}
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		missing("ssh-keygen")
	}
	if _, err := exec.LookPath("ssh"); err != nil {
		missing("ssh")
	}
	u, err := user.Current()
	if err != nil {
		r.t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "arcade-sshd-")
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { os.RemoveAll(dir) })
	// sshd insists that its files (and the folders above them) are not
	// writable by others.
	if err := os.Chmod(dir, 0o700); err != nil {
		r.t.Fatal(err)
	}
	keygen := func(path string) {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "arcade-test", "-f", path).CombinedOutput(); err != nil {
			r.t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
	}
	hostKey := filepath.Join(dir, "host_key")
	clientKey := filepath.Join(dir, "client_key")
	keygen(hostKey)
	keygen(clientKey)
	pub, err := os.ReadFile(clientKey + ".pub")
	if err != nil {
		r.t.Fatal(err)
	}
	auth := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(auth, pub, 0o600); err != nil {
		r.t.Fatal(err)
	}
	priv, err := os.ReadFile(clientKey)
	if err != nil {
		r.t.Fatal(err)
	}
	// Running as root, sshd wants its privilege separation folder.
	if os.Geteuid() == 0 {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			r.t.Fatal(err)
		}
	}
	var lastErr string
	for range 5 {
		port := freePort(r)
		conf := filepath.Join(dir, "sshd_config")
		text := strings.Join([]string{
			"Port " + fmt.Sprint(port),
			"ListenAddress 127.0.0.1",
			"HostKey " + hostKey,
			"PidFile " + filepath.Join(dir, "sshd.pid"),
			"AuthorizedKeysFile " + auth,
			"PasswordAuthentication no",
			"KbdInteractiveAuthentication no",
			"PubkeyAuthentication yes",
			"PermitRootLogin prohibit-password",
			"StrictModes no",
			"UsePAM no",
			"AllowUsers " + u.Username,
			"AllowTcpForwarding no",
			"X11Forwarding no",
			"PrintMotd no",
			"LogLevel ERROR",
			"SetEnv GIT_CONFIG_NOSYSTEM=1",
		}, "\n") + "\n"
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			r.t.Fatal(err)
		}
		cmd := exec.Command(sshdPath, "-D", "-e", "-f", conf, "-p", fmt.Sprint(port))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			r.t.Fatalf("start sshd: %v", err)
		}
		errs := make(chan string, 1)
		go func() {
			var b strings.Builder
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				if b.Len() < 4096 {
					b.WriteString(sc.Text() + "\n")
				}
			}
			errs <- b.String()
		}()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if waitListening(addr, done) {
			r.t.Cleanup(func() {
				syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
					<-done
				}
			})
			return &SSH{Addr: addr, User: u.Username, ClientKey: string(priv), root: r.Root}
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		lastErr = <-errs
	}
	r.t.Fatalf("sshd did not start: %s", lastErr)
	return nil
}

// RepoURL is the ssh:// URL of a repository.
func (s *SSH) RepoURL(name string) string {
	return "ssh://" + s.User + "@" + s.Addr + filepath.Join(s.root, name+".git")
}

func freePort(r *Remote) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitListening(addr string, done chan struct{}) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
