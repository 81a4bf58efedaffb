package dockertest

import (
	"context"
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
