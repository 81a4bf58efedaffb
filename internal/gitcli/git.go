// Package gitcli runs the system git client for the server and the agent:
// it finds git at start, runs one command at a time with a credential that
// reaches git for that command only, and keeps bounded mirror caches of
// repositories (mirror.go).
//
// How a credential reaches git:
//
//   - An HTTPS token (with or without a user name) is written to an
//     unlinked temporary file handed to git as file descriptor 3; a
//     credential helper given on the command line (`credential.helper=!…`,
//     the helper's text holds no secret) reads /dev/fd/3. The value is in
//     no argument, no environment variable, no file with a name and no
//     config file: `ps`, /proc/PID/environ and the repository's
//     .git/config never show it. Helpers configured elsewhere are reset
//     for the command (an empty credential.helper first), so no store or
//     cache helper keeps it either.
//   - An SSH private key is written to a file of mode 0600 in a temporary
//     folder outside any workspace, named by GIT_SSH_COMMAND with
//     `-o IdentitiesOnly=yes` (and BatchMode), and removed when the command
//     ends. Host keys: see KnownHosts.
//
// Every command runs with GIT_TERMINAL_PROMPT=0 (never waits for a person),
// LC_ALL=C, and its error text with every credential value replaced by ***.
package gitcli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Git is the system git client.
type Git struct {
	// Path is the git binary; Version what `git version` says.
	Path    string
	Version string
	// TempDir holds the short-lived files of credentials (SSH keys, the
	// unlinked token file); "" is os.TempDir(). Never a workspace.
	TempDir string
	// KnownHosts is the known_hosts file SSH reads and adds to. Host keys
	// are accepted the first time a host is seen and checked from then on
	// (StrictHostKeyChecking=accept-new): a changed key fails the command.
	// With StrictHosts, only keys already in the file are accepted
	// (StrictHostKeyChecking=yes). "" is a file under TempDir.
	KnownHosts  string
	StrictHosts bool
}

// ErrNotFound is returned by Find when no git binary is on PATH.
var ErrNotFound = errors.New("git not found on PATH")

// Find looks up git on PATH and asks its version.
func Find() (*Git, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return nil, ErrNotFound
	}
	return FindAt("git")
}

// Auth is the credential of one repository.
type Auth struct {
	// Username and Password (a token) for HTTPS; Username "" is sent as
	// "git", which GitHub, Gitea and GitLab accept beside a token.
	Username, Password string
	// SSHKey is a private key (PEM or OpenSSH format) for ssh URLs.
	SSHKey []byte
}

// ParseAuth reads a stored credential: a private key ("-----BEGIN …
// PRIVATE KEY-----"), "user:token", or a token alone.
func ParseAuth(value string) *Auth {
	v := strings.TrimSpace(value)
	if v == "" {
		return nil
	}
	if strings.HasPrefix(v, "-----BEGIN ") && strings.Contains(v, "PRIVATE KEY-----") {
		return &Auth{SSHKey: []byte(v + "\n")}
	}
	if user, tok, ok := strings.Cut(v, ":"); ok && !strings.ContainsAny(v, "\n") && user != "" && tok != "" {
		return &Auth{Username: user, Password: tok}
	}
	return &Auth{Password: v}
}

// Secrets are the values Scrub hides.
func (a *Auth) Secrets() []string {
	if a == nil {
		return nil
	}
	var out []string
	if a.Password != "" {
		out = append(out, a.Password)
	}
	if len(a.SSHKey) > 0 {
		for l := range strings.SplitSeq(string(a.SSHKey), "\n") {
			if l = strings.TrimSpace(l); len(l) >= 16 && !strings.HasPrefix(l, "-----") {
				out = append(out, l)
			}
		}
	}
	return out
}

// Scrub replaces every credential value in s by ***.
func (a *Auth) Scrub(s string) string {
	for _, v := range a.Secrets() {
		s = strings.ReplaceAll(s, v, "***")
	}
	return s
}

// Cmd is one git command.
type Cmd struct {
	// Dir is where git runs ("" is the current directory).
	Dir  string
	Args []string
	// Auth, when set, is the credential for the command's remote.
	Auth *Auth
	// Env is added to the command's environment.
	Env []string
	// Stdout receives the output; nil collects it (Run returns it, at most
	// maxOutput bytes).
	Stdout io.Writer
	// Stderr receives progress and errors besides the error text Run keeps.
	Stderr io.Writer
}

// maxOutput bounds what Run collects of stdout and of stderr.
const maxOutput = 8 << 20

// Error is a git command that failed: its arguments (no secret is ever in
// them), exit code and the end of its error output, credentials scrubbed.
type Error struct {
	Args     []string
	ExitCode int
	Stderr   string
	Err      error
}

func (e *Error) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("git %s: %s", strings.Join(e.Args, " "), msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Run runs the command and returns its output when Stdout is nil.
func (g *Git) Run(ctx context.Context, c Cmd) ([]byte, error) {
	args := append([]string{}, c.Args...)
	env := append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "LC_ALL=C", "GIT_ASKPASS=", "SSH_ASKPASS=", "GCM_INTERACTIVE=never")
	env = append(env, c.Env...)
	var extra []*os.File
	cleanup := func() {}
	if c.Auth != nil {
		pre, more, files, done, err := g.prepareAuth(c.Auth)
		if err != nil {
			return nil, err
		}
		cleanup = done
		args = append(pre, args...)
		env = append(env, more...)
		extra = files
	}
	defer cleanup()
	cmd := exec.CommandContext(ctx, g.Path, args...)
	cmd.Dir = c.Dir
	cmd.Env = env
	cmd.ExtraFiles = extra
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	if c.Stdout != nil {
		cmd.Stdout = c.Stdout
	} else {
		cmd.Stdout = &limitWriter{w: &out, n: maxOutput}
	}
	errTail := &tailWriter{max: 16 << 10}
	if c.Stderr != nil {
		cmd.Stderr = io.MultiWriter(errTail, c.Stderr)
	} else {
		cmd.Stderr = errTail
	}
	err := cmd.Run()
	if err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return out.Bytes(), &Error{Args: c.Args, ExitCode: code, Stderr: c.Auth.Scrub(errTail.String()), Err: err}
	}
	return out.Bytes(), nil
}

// helper is the credential helper given on the command line: it answers
// "get" with what file descriptor 3 holds. Its text holds no secret.
const helper = `!f() { test "$1" = get && cat /dev/fd/3; }; f`

// prepareAuth returns the arguments put before the command's, the
// environment and the extra files of a credential, and what removes its
// files afterwards.
func (g *Git) prepareAuth(a *Auth) (args, env []string, files []*os.File, done func(), err error) {
	dir, err := os.MkdirTemp(g.TempDir, "arcade-git-")
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("credential: %w", err)
	}
	var open []*os.File
	done = func() {
		for _, f := range open {
			f.Close()
		}
		os.RemoveAll(dir)
	}
	if a.Password != "" {
		f, err := os.CreateTemp(dir, "cred-")
		if err != nil {
			done()
			return nil, nil, nil, nil, fmt.Errorf("credential: %w", err)
		}
		open = append(open, f)
		user := a.Username
		if user == "" {
			user = "git"
		}
		if strings.ContainsAny(user+a.Password, "\n\r\x00") {
			done()
			return nil, nil, nil, nil, errors.New("credential: user name or token holds a line break")
		}
		_, err = fmt.Fprintf(f, "username=%s\npassword=%s\n", user, a.Password)
		if err == nil {
			err = os.Remove(f.Name()) // only the descriptor reaches it now
		}
		if err != nil {
			done()
			return nil, nil, nil, nil, fmt.Errorf("credential: %w", err)
		}
		files = []*os.File{f}
		args = append(args, "-c", "credential.helper=", "-c", "credential.helper="+helper)
	}
	if len(a.SSHKey) > 0 {
		key := filepath.Join(dir, "key")
		if err := os.WriteFile(key, a.SSHKey, 0o600); err != nil {
			done()
			return nil, nil, nil, nil, fmt.Errorf("credential: %w", err)
		}
		env = append(env, "GIT_SSH_COMMAND="+g.sshCommand(key))
	}
	return args, env, files, done, nil
}

// SSHCommand is the GIT_SSH_COMMAND of a command without a key: host keys
// are checked the same way.
func (g *Git) SSHCommand() string { return g.sshCommand("") }

func (g *Git) sshCommand(key string) string {
	known := g.KnownHosts
	if known == "" {
		known = filepath.Join(os.TempDir(), "arcade-known_hosts")
		if g.TempDir != "" {
			known = filepath.Join(g.TempDir, "known_hosts")
		}
	}
	strict := "accept-new"
	if g.StrictHosts {
		strict = "yes"
	}
	cmd := "ssh -o BatchMode=yes -o StrictHostKeyChecking=" + strict + " -o UserKnownHostsFile=" + shellQuote(known)
	if key != "" {
		cmd += " -o IdentitiesOnly=yes -o IdentityAgent=none -i " + shellQuote(key)
	}
	return cmd
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// limitWriter keeps the first n bytes and drops the rest.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k]) //nolint:errcheck // a bytes.Buffer
		l.n -= k
	}
	return len(p), nil
}

// tailWriter keeps the last max bytes written.
type tailWriter struct {
	buf []byte
	max int
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailWriter) String() string { return string(t.buf) }

// FindAt is Find for the git binary at path.
func FindAt(path string) (*Git, error) {
	p, err := exec.LookPath(path)
	if err != nil {
		return nil, fmt.Errorf("git %s: %w", path, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, p, "version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s version: %w", p, err)
	}
	return &Git{Path: p, Version: strings.TrimSpace(strings.TrimPrefix(string(out), "git version "))}, nil
}
