// Package sysinfo tells what an agent knows of its host: load metrics to
// report while it works, and labels that describe it to the server.
package sysinfo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
)

// Metrics is one sample of the host's load.
type Metrics struct {
	// CPUPercent is the share of all CPUs busy since the previous
	// sample, 0 to 100.
	CPUPercent float64

	// MemUsed is memory not available to new programs (total less
	// available), in bytes.
	MemTotal, MemUsed uint64
	MemPercent        float64

	// Disk figures are of the file system holding the Sampler's path.
	DiskTotal, DiskUsed uint64
	DiskPercent         float64

	Load1       float64 // one-minute load average
	CollectedAt time.Time
}

// firstInterval is how long the first Sample of a Sampler measures the CPU.
const firstInterval = 100 * time.Millisecond

// Sampler takes samples of the host's load. Its CPUPercent is measured
// between one Sample and the next, so Sample does not block, but for the
// first, which measures over 100ms. It is safe for concurrent use.
type Sampler struct {
	diskPath string

	mu   sync.Mutex
	prev *cpu.TimesStat // CPU times at the previous sample
}

// NewSampler returns a Sampler whose disk figures are of the file system
// holding diskPath (the agent's work directory, say); "/" when empty.
func NewSampler(diskPath string) *Sampler {
	if diskPath == "" {
		diskPath = "/"
	}
	return &Sampler{diskPath: diskPath}
}

// Sample returns the host's load now. When some figure cannot be read, the
// others are still returned, with an error naming what is missing.
func (s *Sampler) Sample(ctx context.Context) (Metrics, error) {
	var m Metrics
	var errs []error

	if p, err := s.cpuPercent(ctx); err != nil {
		errs = append(errs, fmt.Errorf("cpu: %w", err))
	} else {
		m.CPUPercent = p
	}
	if vm, err := mem.VirtualMemoryWithContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("memory: %w", err))
	} else {
		m.MemTotal, m.MemUsed, m.MemPercent = vm.Total, vm.Used, vm.UsedPercent
	}
	if du, err := disk.UsageWithContext(ctx, s.diskPath); err != nil {
		errs = append(errs, fmt.Errorf("disk %s: %w", s.diskPath, err))
	} else {
		m.DiskTotal, m.DiskUsed, m.DiskPercent = du.Total, du.Used, du.UsedPercent
	}
	if la, err := load.AvgWithContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("load: %w", err))
	} else {
		m.Load1 = la.Load1
	}
	m.CollectedAt = time.Now()
	if err := errors.Join(errs...); err != nil {
		return m, fmt.Errorf("sysinfo: %w", err)
	}
	return m, nil
}

func (s *Sampler) cpuPercent(ctx context.Context) (float64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prev == nil {
		t, err := cpuTimes(ctx)
		if err != nil {
			return 0, err
		}
		s.prev = &t
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(firstInterval):
		}
	}
	t, err := cpuTimes(ctx)
	if err != nil {
		return 0, err
	}
	p := busyPercent(*s.prev, t)
	s.prev = &t
	return p, nil
}

func cpuTimes(ctx context.Context) (cpu.TimesStat, error) {
	ts, err := cpu.TimesWithContext(ctx, false)
	if err != nil {
		return cpu.TimesStat{}, err
	}
	if len(ts) == 0 {
		return cpu.TimesStat{}, errors.New("no CPU times")
	}
	return ts[0], nil
}

// busyPercent is the share of time the CPUs were busy between two readings
// of their times. Guest time is already counted in user time on Linux, and
// idle and iowait are not busy.
func busyPercent(a, b cpu.TimesStat) float64 {
	total := func(t cpu.TimesStat) float64 {
		return t.User + t.System + t.Idle + t.Nice + t.Iowait + t.Irq + t.Softirq + t.Steal
	}
	busy := func(t cpu.TimesStat) float64 { return total(t) - t.Idle - t.Iowait }
	dTotal, dBusy := total(b)-total(a), busy(b)-busy(a)
	if dTotal <= 0 || dBusy <= 0 {
		return 0
	}
	return min(100, dBusy/dTotal*100)
}
