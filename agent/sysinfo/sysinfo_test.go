package sysinfo

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
)

var labelValue = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$`)

func TestSample(t *testing.T) {
	s := NewSampler(t.TempDir())
	ctx := context.Background()

	start := time.Now()
	m, err := s.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < firstInterval {
		t.Errorf("first sample took %v, less than its CPU measurement", d)
	}
	checkPlausible(t, m)

	// Keep a CPU busy, then sample again: no waiting this time.
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
	}
	start = time.Now()
	m2, err := s.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("second sample took %v", d)
	}
	checkPlausible(t, m2)
	if m2.CPUPercent <= 0 {
		t.Errorf("CPU percent %v while a CPU was kept busy", m2.CPUPercent)
	}
	if !m2.CollectedAt.After(m.CollectedAt) {
		t.Errorf("collected at %v, then %v", m.CollectedAt, m2.CollectedAt)
	}
}

func checkPlausible(t *testing.T, m Metrics) {
	t.Helper()
	t.Logf("%+v", m)
	percent := func(name string, v float64) {
		if math.IsNaN(v) || v < 0 || v > 100 {
			t.Errorf("%s = %v", name, v)
		}
	}
	percent("CPUPercent", m.CPUPercent)
	percent("MemPercent", m.MemPercent)
	percent("DiskPercent", m.DiskPercent)
	if m.MemTotal < 64<<20 || m.MemUsed == 0 || m.MemUsed > m.MemTotal || m.MemPercent == 0 {
		t.Errorf("memory: total %d used %d (%v%%)", m.MemTotal, m.MemUsed, m.MemPercent)
	}
	if m.DiskTotal == 0 || m.DiskUsed > m.DiskTotal {
		t.Errorf("disk: total %d used %d", m.DiskTotal, m.DiskUsed)
	}
	if m.Load1 < 0 || math.IsNaN(m.Load1) {
		t.Errorf("load %v", m.Load1)
	}
	if d := time.Since(m.CollectedAt); d < 0 || d > time.Minute {
		t.Errorf("collected at %v", m.CollectedAt)
	}
}

func TestSampleWithCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := NewSampler("").Sample(ctx)
	if err == nil {
		t.Fatal("no error")
	}
}

func TestSampleOfAMissingPath(t *testing.T) {
	m, err := NewSampler(filepath.Join(t.TempDir(), "missing")).Sample(context.Background())
	if err == nil || !strings.Contains(err.Error(), "disk") {
		t.Fatalf("error %v", err)
	}
	if m.MemTotal == 0 {
		t.Error("the other figures are missing too")
	}
}

func TestBusyPercent(t *testing.T) {
	a := cpu.TimesStat{User: 10, System: 10, Idle: 80}
	for _, c := range []struct {
		b    cpu.TimesStat
		want float64
	}{
		{cpu.TimesStat{User: 20, System: 10, Idle: 90}, 50},
		{cpu.TimesStat{User: 10, System: 10, Idle: 100, Iowait: 20}, 0},
		{cpu.TimesStat{User: 30, System: 30, Idle: 80}, 100},
		{a, 0},
	} {
		if got := busyPercent(a, c.b); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("busyPercent(%v, %v) = %v, want %v", a, c.b, got, c.want)
		}
	}
}

func TestLabels(t *testing.T) {
	labels := Labels(context.Background(), Probe{})
	t.Logf("%v", labels)
	for _, k := range []string{LabelOS, LabelArch, LabelHostname, LabelCPUCores, LabelMemoryMB} {
		if labels[k] == "" {
			t.Errorf("label %s missing", k)
		}
	}
	for k, v := range labels {
		if !labelValue.MatchString(v) {
			t.Errorf("label %s=%q is not a valid label value", k, v)
		}
	}
	if labels[LabelOS] != runtime.GOOS || labels[LabelArch] != runtime.GOARCH {
		t.Errorf("os/arch %s/%s", labels[LabelOS], labels[LabelArch])
	}
	if labels[LabelCPUCores] != strconv.Itoa(runtime.NumCPU()) {
		t.Errorf("cpu-cores %s, want %d", labels[LabelCPUCores], runtime.NumCPU())
	}
	if mb, err := strconv.Atoi(labels[LabelMemoryMB]); err != nil || mb < 64 {
		t.Errorf("memory-mb %q", labels[LabelMemoryMB])
	}
	if host, _ := os.Hostname(); host != "" && labels[LabelHostname] != SanitizeLabelValue(host) {
		t.Errorf("hostname %q for %q", labels[LabelHostname], host)
	}
}

// engine answers Version with version, or fails.
type engine struct {
	version string
	err     error
}

func (e engine) Version(context.Context) (string, error) { return e.version, e.err }

// TestContainerRuntimeLabels checks that the labels follow the engine the
// probe names, and nothing else: not the host's own engine, not a client
// in PATH.
func TestContainerRuntimeLabels(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name          string
		probe         Probe
		want, version string
	}{
		{"an answering engine", Probe{Engine: engine{version: "20.10.24+dfsg1"}}, "docker", "20.10.24-dfsg1"},
		{"a version that is no label", Probe{Engine: engine{version: "+++"}}, "docker", ""},
		{"no engine", Probe{}, "", ""},
		{"a silent engine", Probe{Engine: engine{err: errors.New("connection refused")}}, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("DOCKER_HOST", "unix:///var/run/docker.sock") // never read
			l := Labels(ctx, c.probe)
			if l[LabelContainerRuntime] != c.want || l[LabelContainerRuntimeVersion] != c.version {
				t.Errorf("labels %v, want runtime %q version %q", l, c.want, c.version)
			}
		})
	}
}

func TestSanitizeLabelValue(t *testing.T) {
	for in, want := range map[string]string{
		"build-01.example.com":         "build-01.example.com",
		"My_Host":                      "My_Host",
		"-.weird host!name_.":          "weird-host-name",
		"höst":                         "h-st",
		"":                             "",
		"---":                          "",
		strings.Repeat("a", 70):        strings.Repeat("a", 63),
		strings.Repeat("a", 62) + "-b": strings.Repeat("a", 62),
	} {
		got := SanitizeLabelValue(in)
		if got != want {
			t.Errorf("SanitizeLabelValue(%q) = %q, want %q", in, got, want)
		}
		if !labelValue.MatchString(got) {
			t.Errorf("SanitizeLabelValue(%q) = %q is not valid", in, got)
		}
	}
}
