// Package dockertest gives tests a private Docker engine, a local registry
// and small images built on the spot, so that container tests need no
// engine, registry or image of the host.
//
// [Start] returns the test binary's engine: one dockerd started on first
// use, with its data and exec roots in a temporary directory, listening only
// on a unix socket there, and started with --bridge=none --iptables=false
// --ip-forward=false so that it changes no host networking (user-defined
// networks still give containers name resolution). A package whose tests
// call Start stops the engine when they are done by calling [Main] (or
// [Stop]) from its TestMain. [StartPrivate] gives a test an engine of its
// own, which it may stop and start again.
//
// [StartRegistry] starts Debian's docker-registry (distribution) on a free
// port of 127.0.0.1, optionally behind htpasswd authentication;
// [Engine.BuildBusybox] builds a 2 MB image from busybox-static with
// docker import, and [Engine.PushAndForget] pushes it to a registry and
// removes the local tag, so that a test goes through a real pull.
//
// When dockerd, docker-init or busybox is missing, Start skips the test,
// unless ARCADE_REQUIRE_DOCKER=1, when it fails it.
package dockertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
)

// RequireEnv set to 1 turns a missing engine from a skipped test into a
// failed one (CI sets it).
const RequireEnv = "ARCADE_REQUIRE_DOCKER"

// LabelPrefix starts the keys of the labels Arcade puts on what it creates
// in an engine; NoLeftovers looks for them.
const LabelPrefix = "arcade.dev/"

// AgentLabel is the label every object Arcade creates carries.
const AgentLabel = LabelPrefix + "agent"

const (
	startTimeout = 30 * time.Second
	dirPrefix    = "arcade-dockerd-"
)

// Engine is a running dockerd.
type Engine struct {
	// Host is its address, unix:///…/docker.sock, as DOCKER_HOST spells it.
	Host string
	// Client talks to it.
	Client *client.Client

	dir    string
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

var (
	mainRunning atomic.Bool
	sharedOnce  sync.Once
	sharedMu    sync.Mutex
	shared      *Engine
	sharedErr   error
)

// Available reports whether the binaries a private engine needs are here.
func Available() error {
	for _, bin := range []string{"dockerd", "containerd", "runc", "docker-init"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found: install docker.io", bin)
		}
	}
	if _, err := busyboxPath(); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("dockerd needs root")
	}
	return nil
}

func skipOrFail(tb testing.TB, err error) {
	tb.Helper()
	if os.Getenv(RequireEnv) == "1" {
		tb.Fatalf("dockertest: %v (%s=1)", err, RequireEnv)
	}
	tb.Skipf("dockertest: %v", err)
}

// Start returns the test binary's engine, starting it on first use. Each
// test that uses it must leave nothing labelled by Arcade behind; Start
// checks that at the test's end (see NoLeftovers).
func Start(tb testing.TB) *Engine {
	tb.Helper()
	if err := Available(); err != nil {
		skipOrFail(tb, err)
	}
	if !mainRunning.Load() {
		tb.Fatal("dockertest: call dockertest.Main (or Stop) from TestMain to stop the engine")
	}
	sharedOnce.Do(func() {
		e, err := startEngine()
		sharedMu.Lock()
		shared, sharedErr = e, err
		sharedMu.Unlock()
	})
	sharedMu.Lock()
	e, err := shared, sharedErr
	sharedMu.Unlock()
	if err != nil {
		tb.Fatalf("dockertest: %v", err)
	}
	tb.Cleanup(func() { e.NoLeftovers(tb) })
	return e
}

// StartPrivate starts an engine for this test alone, stopped at its end.
func StartPrivate(tb testing.TB) *Engine {
	tb.Helper()
	if err := Available(); err != nil {
		skipOrFail(tb, err)
	}
	e, err := startEngine()
	if err != nil {
		tb.Fatalf("dockertest: %v", err)
	}
	tb.Cleanup(func() {
		if err := e.stop(true); err != nil {
			tb.Errorf("dockertest: stop engine: %v", err)
		}
	})
	return e
}

// Main runs the tests, then stops the engine Start may have started:
//
//	func TestMain(m *testing.M) { dockertest.Main(m) }
func Main(m *testing.M) {
	mainRunning.Store(true)
	code := m.Run()
	if err := Stop(); err != nil && code == 0 {
		os.Exit(1)
	}
}

// Stop stops the test binary's engine, if it runs. For a TestMain that
// already hands m to another Main (pgtest.Main): call MarkMain first,
// then Stop after it.
func Stop() error {
	mainRunning.Store(false)
	sharedMu.Lock()
	e := shared
	shared, sharedErr = nil, errors.New("dockertest: the engine was stopped")
	sharedMu.Unlock()
	if e == nil {
		return nil
	}
	if err := e.stop(true); err != nil {
		fmt.Fprintf(os.Stderr, "dockertest: stopping dockerd: %v\n", err)
		return err
	}
	return nil
}

// MarkMain says that TestMain calls Stop after the tests.
func MarkMain() { mainRunning.Store(true) }

func startEngine() (*Engine, error) {
	removeStaleDirs()
	// A unix socket path is short: keep the directory near the root.
	dir, err := os.MkdirTemp("/tmp", dirPrefix)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return nil, err
	}
	e := &Engine{Host: "unix://" + filepath.Join(dir, "docker.sock"), dir: dir}
	if err := e.launch(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	c, err := client.New(client.WithHost(e.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		_ = e.stop(true)
		return nil, err
	}
	e.Client = c
	return e, nil
}

func (e *Engine) launch() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	sock := filepath.Join(e.dir, "docker.sock")
	_ = os.Remove(sock)
	logf, err := os.OpenFile(filepath.Join(e.dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("dockerd",
		"--data-root", filepath.Join(e.dir, "root"),
		"--exec-root", filepath.Join(e.dir, "exec"),
		"--pidfile", filepath.Join(e.dir, "dockerd.pid"),
		"-H", "unix://"+sock,
		"--storage-driver", "overlay2",
		"--bridge=none", "--iptables=false", "--ip-forward=false", "--ip-masq=false",
		"--userland-proxy=false",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The engine ends with the test binary, even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start dockerd: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	e.cmd, e.exited = cmd, exited
	c, err := client.New(client.WithHost("unix://"+sock), client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Ping(ctx, client.PingOptions{})
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(e.dir, "dockerd.log"))
			return fmt.Errorf("dockerd exited: %s", tail(log, 2000))
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-exited
			return fmt.Errorf("dockerd not ready in %s: %v", startTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Halt stops the engine (SIGTERM, as an operator stopping the service
// would) and keeps its data; Resume starts it again.
func (e *Engine) Halt(tb testing.TB) {
	tb.Helper()
	if err := e.stop(false); err != nil {
		tb.Fatalf("dockertest: halt: %v", err)
	}
}

// Resume starts a halted engine again on the same socket and data.
func (e *Engine) Resume(tb testing.TB) {
	tb.Helper()
	if err := e.launch(); err != nil {
		tb.Fatalf("dockertest: resume: %v", err)
	}
}

func (e *Engine) stop(remove bool) error {
	e.mu.Lock()
	cmd, exited := e.cmd, e.exited
	e.cmd = nil
	e.mu.Unlock()
	var err error
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			err = errors.New("dockerd did not stop on SIGTERM")
		}
	}
	if remove {
		if e.Client != nil {
			_ = e.Client.Close()
		}
		killShims(e.dir)
		unmountUnder(e.dir)
		if rerr := os.RemoveAll(e.dir); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

// killShims ends container shims of this engine that outlived it (only
// after a crash of dockerd).
func killShims(dir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("containerd-shim")) || !bytes.Contains(b, []byte(dir)) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// unmountUnder unmounts what the engine left mounted below dir.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			points = append(points, f[1])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		_ = syscall.Unmount(points[i], syscall.MNT_DETACH)
	}
}

// removeStaleDirs removes the directories of engines whose test binary is
// gone.
func removeStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join("/tmp", dirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || syscall.Kill(pid, 0) == nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(dir, "dockerd.pid")); err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && syscall.Kill(p, 0) == nil {
				continue
			}
		}
		killShims(dir)
		unmountUnder(dir)
		_ = os.RemoveAll(dir)
	}
}

// NoLeftovers fails the test when the engine holds a container, network or
// volume labelled by Arcade.
func (e *Engine) NoLeftovers(tb testing.TB) {
	tb.Helper()
	left, err := e.Leftovers(context.Background())
	if err != nil {
		tb.Errorf("dockertest: list objects: %v", err)
		return
	}
	if len(left) > 0 {
		tb.Errorf("dockertest: the engine still holds objects labelled by Arcade: %v", left)
		// Removed so that the tests after this one, which share the
		// engine, report only what they leave themselves.
		if err := e.RemoveLeftovers(context.Background()); err != nil {
			tb.Errorf("dockertest: remove the leftovers: %v", err)
		}
	}
}

// RemoveLeftovers force-removes every container, network and volume
// labelled by Arcade.
func (e *Engine) RemoveLeftovers(ctx context.Context) error {
	f := make(client.Filters).Add("label", AgentLabel)
	var errs []error
	cs, err := e.Client.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	for _, c := range cs.Items {
		if _, err := e.Client.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.ID, err))
		}
	}
	ns, err := e.Client.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list networks: %w", err))...)
	}
	for _, n := range ns.Items {
		if _, err := e.Client.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
		}
	}
	vs, err := e.Client.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list volumes: %w", err))...)
	}
	for _, v := range vs.Items {
		if _, err := e.Client.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err != nil {
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Leftovers lists the containers, networks and volumes labelled by Arcade
// ("container NAME", "network NAME", "volume NAME").
func (e *Engine) Leftovers(ctx context.Context) ([]string, error) {
	f := make(client.Filters).Add("label", AgentLabel)
	var out []string
	cs, err := e.Client.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, err
	}
	for _, c := range cs.Items {
		out = append(out, "container "+strings.Join(c.Names, ","))
	}
	ns, err := e.Client.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return nil, err
	}
	for _, n := range ns.Items {
		out = append(out, "network "+n.Name)
	}
	vs, err := e.Client.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return nil, err
	}
	for _, v := range vs.Items {
		out = append(out, "volume "+v.Name)
	}
	return out, nil
}

// Logs returns the end of the engine's own log, for failure messages.
func (e *Engine) Logs() string {
	b, _ := os.ReadFile(filepath.Join(e.dir, "dockerd.log"))
	return tail(b, 4000)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func busyboxPath() (string, error) {
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	if p, err := exec.LookPath("busybox"); err == nil {
		return p, nil
	}
	return "", errors.New("busybox not found: install busybox-static")
}

// Image describes an image to build from busybox.
type Image struct {
	// Ref is the image's name, "NAME:TAG".
	Ref string
	// Changes are Dockerfile instructions applied on import ("USER 1000",
	// `ENV A=b`).
	Changes []string
	// NoShell leaves /bin/sh out of the image.
	NoShell bool
	// Files are more files to put in, path → content.
	Files map[string]string
}

// BuildBusybox builds an image holding busybox-static with a link for each
// of its applets, /etc/passwd (root, and user "app" with uid 1000) and
// /etc/group, through docker import.
func (e *Engine) BuildBusybox(tb testing.TB, img Image) {
	tb.Helper()
	bb, err := busyboxPath()
	if err != nil {
		skipOrFail(tb, err)
	}
	root := tb.TempDir()
	must := func(err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "bin"), 0o755))
	for _, d := range []string{"etc", "tmp", "root", "home/app"} {
		must(os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	must(os.Chmod(filepath.Join(root, "tmp"), 0o1777))
	must(os.Chown(filepath.Join(root, "home/app"), 1000, 1000))
	data, err := os.ReadFile(bb)
	must(err)
	must(os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755))
	list, err := exec.Command(bb, "--list").Output()
	must(err)
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" || (img.NoShell && (applet == "sh" || applet == "ash")) {
			continue
		}
		must(os.Symlink("busybox", filepath.Join(root, "bin", applet)))
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
		"etc/group":  "root:x:0:\napp:x:1000:\n",
	}
	for p, c := range img.Files {
		files[strings.TrimPrefix(p, "/")] = c
	}
	for p, c := range files {
		must(os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755))
		must(os.WriteFile(filepath.Join(root, p), []byte(c), 0o644))
	}
	tarCmd := exec.Command("tar", "-C", root, "-c", ".")
	out, err := tarCmd.StdoutPipe()
	must(err)
	must(tarCmd.Start())
	changes := append([]string{`ENV PATH=/bin`}, img.Changes...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := e.Client.ImageImport(ctx, client.ImageImportSource{Source: out, SourceName: "-"}, img.Ref,
		client.ImageImportOptions{Changes: changes})
	if err != nil {
		_ = tarCmd.Wait()
		tb.Fatalf("docker import %s: %v", img.Ref, err)
	}
	_, _ = io.Copy(io.Discard, res)
	_ = res.Close()
	must(tarCmd.Wait())
}

// PushAndForget pushes local image ref to registry reg (its Addr is the
// host part of ref) and removes the local tag, so that the next use of
// ref pulls it.
func (e *Engine) PushAndForget(tb testing.TB, ref string, reg *Registry) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	auth, err := authconfig.Encode(registry.AuthConfig{Username: reg.User, Password: reg.Password, ServerAddress: reg.Addr})
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := e.Client.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: auth})
	if err != nil {
		tb.Fatalf("push %s: %v", ref, err)
	}
	for m, err := range resp.JSONMessages(ctx) {
		if err != nil {
			tb.Fatalf("push %s: %v", ref, err)
		}
		if m.Error != nil {
			tb.Fatalf("push %s: %s", ref, m.Error.Message)
		}
	}
	if _, err := e.Client.ImageRemove(ctx, ref, client.ImageRemoveOptions{}); err != nil {
		tb.Fatalf("remove local tag %s: %v", ref, err)
	}
}

// HasImage reports whether the engine holds image ref.
func (e *Engine) HasImage(ctx context.Context, ref string) bool {
	_, err := e.Client.ImageInspect(ctx, ref)
	return err == nil
}
