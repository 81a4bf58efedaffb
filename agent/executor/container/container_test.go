package container_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/go-arcade/arcade/agent/executor"
	"github.com/go-arcade/arcade/agent/executor/container"
	"github.com/go-arcade/arcade/agent/executor/executortest"
	"github.com/go-arcade/arcade/internal/dockertest"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

const image = "arcade-test/busybox:1"

var buildOnce sync.Once

// engine returns the test engine, with the test image built.
func engine(t *testing.T) (*dockertest.Engine, *container.Engine) {
	t.Helper()
	de := dockertest.Start(t)
	buildOnce.Do(func() { de.BuildBusybox(t, dockertest.Image{Ref: image}) })
	e, err := container.Connect(de.Host, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return de, e
}

func spec(t *testing.T, dir string) container.Spec {
	scratch := filepath.Join(t.TempDir(), "scratch")
	if err := os.Mkdir(scratch, 0o755); err != nil {
		t.Fatal(err)
	}
	return container.Spec{AgentID: "test-agent", JobID: "job-" + filepath.Base(dir), Attempt: 1, Image: image,
		Workspace: dir, Scratch: scratch}
}

// TestContainerConformance runs the executor conformance suite in a
// container.
func TestContainerConformance(t *testing.T) {
	_, e := engine(t)
	executortest.Run(t, func(t *testing.T, dir string) executor.Executor {
		j, err := e.Start(context.Background(), spec(t, dir), nil)
		if err != nil {
			t.Fatal(err)
		}
		return j
	})
}

// TestScratchLinksDoNotLeadTheAgentOut: a step plants links to host paths
// where the agent writes the next step's script and reads its status; the
// agent writes nothing outside, and the next step runs as written.
func TestScratchLinksDoNotLeadTheAgentOut(t *testing.T) {
	_, e := engine(t)
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "pwned")
	j, err := e.Start(context.Background(), spec(t, dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close(context.Background())
	res := j.Run(context.Background(), executor.Spec{Dir: dir, Commands: []string{
		"for f in step-2.sh step-2.rc step-2.pid; do ln -s " + outside + " /arcade/$f; done", "ls -l /arcade",
	}}, nil)
	if res.Outcome != executor.Succeeded {
		t.Fatalf("step 1: %+v", res)
	}
	var out []string
	res = j.Run(context.Background(), executor.Spec{Dir: dir, Commands: []string{"echo second step"}}, func(l executor.Line) {
		if l.Stream == executor.Stdout {
			out = append(out, l.Text)
		}
	})
	if res.Outcome != executor.Succeeded || len(out) != 1 || out[0] != "second step" {
		t.Errorf("step 2: %+v %q", res, out)
	}
	if _, err := os.Lstat(outside); err == nil {
		t.Errorf("the agent wrote %s, outside the job's folders", outside)
	}
}
