package dockertest

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

func TestMain(m *testing.M) { Main(m) }

// TestPullThroughRegistry builds an image, pushes it to a registry with
// authentication, forgets it, pulls it back and runs it.
func TestPullThroughRegistry(t *testing.T) {
	e := Start(t)
	reg := StartRegistry(t, RegistryOptions{User: "ci", Password: "s3cret"})
	ref := reg.Addr + "/arcade/busybox:1"
	e.BuildBusybox(t, Image{Ref: ref, Files: map[string]string{"/hello.txt": "hello from the image\n"}})
	e.PushAndForget(t, ref, reg)
	ctx := context.Background()
	if e.HasImage(ctx, ref) {
		t.Fatal("local tag still there")
	}
	// Without a credential the registry refuses.
	if resp, err := e.Client.ImagePull(ctx, ref, client.ImagePullOptions{}); err == nil {
		err = resp.Wait(ctx)
		if err == nil {
			t.Fatal("pulled without a credential")
		}
	}
	auth := reg.auth(t)
	resp, err := e.Client.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: auth})
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := e.Client.ContainerCreate(ctx, client.ContainerCreateOptions{Image: ref,
		Config: &container.Config{Cmd: []string{"cat", "/hello.txt"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Client.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
	if _, err := e.Client.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	w := e.Client.ContainerWait(ctx, c.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case r := <-w.Result:
		if r.StatusCode != 0 {
			t.Fatalf("exit %d", r.StatusCode)
		}
	case err := <-w.Error:
		t.Fatal(err)
	}
	logs, err := e.Client.ContainerLogs(ctx, c.ID, client.ContainerLogsOptions{ShowStdout: true})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	_, _ = stdcopy.StdCopy(&out, io.Discard, logs)
	if out.String() != "hello from the image\n" {
		t.Fatalf("output %q", out.String())
	}
}

// recordTB is a testing.TB that records errors instead of failing.
type recordTB struct {
	testing.TB
	errors []string
}

func (r *recordTB) Helper() {}
func (r *recordTB) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// TestNoLeftoversReportsAndRemoves leaves a labelled container, network
// and volume: NoLeftovers reports all three and removes them, so the next
// test on the shared engine starts clean.
func TestNoLeftoversReportsAndRemoves(t *testing.T) {
	e := Start(t)
	ctx := context.Background()
	e.BuildBusybox(t, Image{Ref: "arcade-leftover:1"})
	labels := map[string]string{AgentLabel: "test"}
	nw, err := e.Client.NetworkCreate(ctx, "arcade-leftover-net", client.NetworkCreateOptions{Driver: "bridge", Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.VolumeCreate(ctx, client.VolumeCreateOptions{Name: "arcade-leftover-vol", Labels: labels}); err != nil {
		t.Fatal(err)
	}
	c, err := e.Client.ContainerCreate(ctx, client.ContainerCreateOptions{Name: "arcade-leftover", Image: "arcade-leftover:1",
		Config:     &container.Config{Cmd: []string{"sleep", "60"}, Labels: labels},
		HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(nw.ID)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	rec := &recordTB{TB: t}
	e.NoLeftovers(rec)
	report := strings.Join(rec.errors, "\n")
	for _, want := range []string{"container /arcade-leftover", "network arcade-leftover-net", "volume arcade-leftover-vol"} {
		if !strings.Contains(report, want) {
			t.Errorf("report %q does not name %s", report, want)
		}
	}
	if left, err := e.Leftovers(ctx); err != nil || len(left) != 0 {
		t.Errorf("after NoLeftovers the engine holds %v (%v), want nothing", left, err)
	}
	if _, err := e.Client.ImageRemove(ctx, "arcade-leftover:1", client.ImageRemoveOptions{Force: true}); err != nil {
		t.Error(err)
	}
}
