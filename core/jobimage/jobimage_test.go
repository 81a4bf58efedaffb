package jobimage

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/durationpb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
)

func TestParseMemory(t *testing.T) {
	for in, want := range map[string]int64{"512m": 512 << 20, "1g": 1 << 30, "1.5G": 3 << 29, "64MiB": 64 << 20, "100": 100, "2k": 2048} {
		got, err := ParseMemory(in)
		if err != nil || got != want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "m", "-1m", "1x", "1e9", "9999999999t"} {
		if _, err := ParseMemory(in); err == nil {
			t.Errorf("ParseMemory(%q) accepted", in)
		}
	}
}

func TestCheckNamesTheField(t *testing.T) {
	secrets := func(name string) bool { return name == "REG" }
	svc := func(mod func(*agentv1.ServiceContainer)) *agentv1.ContainerOptions {
		s := &agentv1.ServiceContainer{Name: "db", Image: "postgres:16", ReadyPort: 5432}
		mod(s)
		return &agentv1.ContainerOptions{Services: []*agentv1.ServiceContainer{s}}
	}
	for _, c := range []struct {
		image string
		opts  *agentv1.ContainerOptions
		field string
	}{
		{"Busybox:1", nil, "image"},
		{"busybox:1 ", nil, "image"},
		{"busy box", nil, "image"},
		{"a@sha256:123", nil, "image"},
		{strings.Repeat("a", 600), nil, "image"},
		{"", &agentv1.ContainerOptions{Cpus: 1}, "container"},
		{"busybox", &agentv1.ContainerOptions{RegistryAuthSecret: "NOPE"}, "container.registry_auth_secret"},
		{"busybox", &agentv1.ContainerOptions{Cpus: -1}, "container.cpus"},
		{"busybox", &agentv1.ContainerOptions{MemoryBytes: 1024}, "container.memory_bytes"},
		{"busybox", &agentv1.ContainerOptions{NetworkMode: "container:x"}, "container.network_mode"},
		{"busybox", &agentv1.ContainerOptions{NetworkMode: "none", Services: svc(func(*agentv1.ServiceContainer) {}).Services}, "container.services"},
		{"busybox", svc(func(s *agentv1.ServiceContainer) { s.Name = "DB" }), "container.services[0].name"},
		{"busybox", svc(func(s *agentv1.ServiceContainer) { s.Image = "::" }), "container.services[0].image"},
		{"busybox", svc(func(s *agentv1.ServiceContainer) { s.ReadyPort = 70000 }), "container.services[0].ready_port"},
		{"busybox", svc(func(s *agentv1.ServiceContainer) { s.ReadyTimeout = durationpb.New(-1) }), "container.services[0].ready_timeout"},
	} {
		err := Check("", c.image, c.opts, secrets)
		var ie *Error
		if !errors.As(err, &ie) || ie.Field != c.field {
			t.Errorf("Check(%q, %v) = %v, want an error in %s", c.image, c.opts, err, c.field)
		}
	}
	ok := &agentv1.ContainerOptions{RegistryAuthSecret: "REG", Cpus: 0.5, MemoryBytes: 64 << 20,
		Services: svc(func(*agentv1.ServiceContainer) {}).Services}
	for _, image := range []string{"busybox", "golang:1.22", "127.0.0.1:5000/team/app:v1", "ghcr.io/a/b@sha256:" + strings.Repeat("a", 64)} {
		if err := Check("stages[0].jobs[0]", image, ok, secrets); err != nil {
			t.Errorf("Check(%q): %v", image, err)
		}
	}
}

func FuzzParseMemory(f *testing.F) {
	for _, s := range []string{"512m", "1.5g", "64MiB", "0", "9e99"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseMemory(s)
		if err == nil && n < 0 {
			t.Fatalf("ParseMemory(%q) = %d", s, n)
		}
	})
}

func TestImageParameters(t *testing.T) {
	env := map[string]string{"IMAGE": "127.0.0.1:5000/ci/go", "TAG": "1.22"}
	if got := Expand("${IMAGE}:${TAG}", env); got != "127.0.0.1:5000/ci/go:1.22" {
		t.Errorf("Expand = %q", got)
	}
	if got := Expand("golang:${MISSING}", env); got != "golang:" {
		t.Errorf("Expand of an unknown name = %q", got)
	}
	for _, ok := range []string{"${IMAGE}", "golang:${TAG}", "${REG}/team/app:${TAG}"} {
		if err := CheckImage("image", ok); err != nil {
			t.Errorf("CheckImage(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"$IMAGE", "${IMAGE", "$(IMAGE)", "${1X}", "Golang:${TAG}"} {
		if err := CheckImage("image", bad); err == nil {
			t.Errorf("CheckImage(%q) accepted", bad)
		}
	}
	if err := CheckExpanded("image", "${IMAGE}", ""); err == nil || !strings.Contains(err.Error(), "expands to nothing") {
		t.Errorf("CheckExpanded of nothing: %v", err)
	}
	if err := CheckExpanded("image", "golang:${TAG}", "golang:"); err == nil {
		t.Error("CheckExpanded accepted golang:")
	}
	o := &agentv1.ContainerOptions{Services: []*agentv1.ServiceContainer{{Name: "db", Image: "${IMAGE}"}}}
	if got := ExpandOptions(o, env); got.GetServices()[0].GetImage() != env["IMAGE"] || o.GetServices()[0].GetImage() != "${IMAGE}" {
		t.Errorf("ExpandOptions: %v (original %v)", got, o)
	}
}
