package sysinfo

import (
	"context"
	"maps"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/shirou/gopsutil/v4/mem"

	"github.com/go-arcade/arcade/core/labels"
)

// Label keys set by Labels.
const (
	LabelOS               = "os"
	LabelArch             = "arch"
	LabelHostname         = "hostname"
	LabelCPUCores         = "cpu-cores"
	LabelMemoryMB         = "memory-mb"
	LabelContainerRuntime = labels.ContainerRuntime
	// LabelContainerRuntimeVersion is the engine's version.
	LabelContainerRuntimeVersion = labels.ContainerRuntimeVersion
)

// probeTimeout bounds each check of a container engine.
const probeTimeout = 3 * time.Second

// Engine is a container engine, asked through its API client.
type Engine interface {
	// Version returns the engine's version; an error when it does not
	// answer.
	Version(ctx context.Context) (string, error)
}

// Probe says where Labels looks for a container engine.
type Probe struct {
	// Engine is the engine the agent was given; nil: no container-runtime
	// label is ever set.
	Engine Engine
}

// Labels describes the host, with values that are valid Kubernetes label
// values: os and arch (as Go names them), hostname, cpu-cores (the CPUs
// this process may use), memory-mb, and the labels of EngineLabels. It may
// take up to probeTimeout, waiting for an engine.
func Labels(ctx context.Context, probe Probe) map[string]string {
	labels := map[string]string{
		LabelOS:       SanitizeLabelValue(runtime.GOOS),
		LabelArch:     SanitizeLabelValue(runtime.GOARCH),
		LabelCPUCores: strconv.Itoa(runtime.NumCPU()),
	}
	host, _ := os.Hostname()
	if host = SanitizeLabelValue(host); host == "" {
		host = "unknown"
	}
	labels[LabelHostname] = host
	if vm, err := mem.VirtualMemoryWithContext(ctx); err == nil && vm.Total > 0 {
		labels[LabelMemoryMB] = strconv.FormatUint(vm.Total>>20, 10)
	}
	maps.Copy(labels, EngineLabels(ctx, probe.Engine))
	return labels
}

// EngineLabels returns container-runtime=docker and
// container-runtime-version=VERSION (sanitized into a label value) when
// engine answers through its API, and no label otherwise (engine nil, or
// silent).
func EngineLabels(ctx context.Context, engine Engine) map[string]string {
	out := map[string]string{}
	if engine == nil {
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	v, err := engine.Version(ctx)
	if err != nil {
		return out
	}
	out[LabelContainerRuntime] = "docker"
	if v = SanitizeLabelValue(v); v != "" {
		out[LabelContainerRuntimeVersion] = v
	}
	return out
}

// SanitizeLabelValue turns s into a valid Kubernetes label value: at most
// 63 characters, alphanumerics, '-', '_' and '.', beginning and ending with
// an alphanumeric. Other characters become '-'. It may return "".
func SanitizeLabelValue(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case isAlnum(r), r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	v := strings.TrimFunc(b.String(), func(r rune) bool { return !isAlnum(r) })
	if len(v) > 63 {
		v = strings.TrimRightFunc(v[:63], func(r rune) bool { return !isAlnum(r) })
	}
	return v
}

func isAlnum(r rune) bool {
	return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
}
