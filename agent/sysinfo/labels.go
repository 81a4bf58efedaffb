package sysinfo

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
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
)

// probeTimeout bounds each check of a container engine.
const probeTimeout = 2 * time.Second

// DefaultDockerHost is where the Docker engine listens when DOCKER_HOST is
// not set.
const DefaultDockerHost = "unix:///var/run/docker.sock"

// Probe says where Labels looks for a container engine.
type Probe struct {
	// Containers turns container engine detection on; off, no
	// container-runtime label is ever set.
	Containers bool
	// DockerHost is the engine's address, as DOCKER_HOST spells it
	// (unix:///path or tcp://host:port); "" means DefaultDockerHost.
	DockerHost string
}

// Labels describes the host, with values that are valid Kubernetes label
// values: os and arch (as Go names them), hostname, cpu-cores (the CPUs
// this process may use), memory-mb, and container-runtime ("docker") only
// when probe allows it and the engine at probe.DockerHost answers. It may
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
	if probe.Containers && dockerEngineAnswers(ctx, probe.DockerHost) {
		labels[LabelContainerRuntime] = "docker"
	}
	return labels
}

// dockerEngineAnswers reports whether the Docker engine at host (a
// DOCKER_HOST value) answers GET /_ping. With TLS (DOCKER_TLS_VERIFY) a
// TCP engine only has to accept a connection. Other schemes (ssh://) are
// not probed.
func dockerEngineAnswers(ctx context.Context, host string) bool {
	if host == "" {
		host = DefaultDockerHost
	}
	u, err := url.Parse(host)
	if err != nil {
		return false
	}
	var network, addr string
	switch u.Scheme {
	case "unix":
		network, addr = "unix", u.Path
	case "tcp":
		network, addr = "tcp", u.Host
	default:
		return false
	}
	if addr == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var d net.Dialer
	if network == "tcp" && os.Getenv("DOCKER_TLS_VERIFY") != "" {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	}

	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		DisableKeepAlives: true,
	}
	defer transport.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	if err != nil {
		return false
	}
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
	return resp.StatusCode == http.StatusOK
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
