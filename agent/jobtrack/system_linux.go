//go:build linux

package jobtrack

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// killTimeout bounds the wait for a job's processes to be gone.
	killTimeout = 10 * time.Second
	// reapTimeout bounds the wait for the agent's own killed children.
	reapTimeout = 2 * time.Second
)

// system is how this machine holds and ends processes.
type system struct {
	log  *slog.Logger
	boot string
	// base holds one cgroup per running job ("" without cgroups).
	base string
}

func newSystem(key string, log *slog.Logger) *system {
	s := &system{log: log}
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		s.boot = strings.TrimSpace(string(b))
	}
	base, err := cgroupBase(key)
	if err != nil {
		log.Info("jobs are held by process group and environment marker (no cgroup)", "reason", err)
		return s
	}
	s.base = base
	log.Debug("jobs are held in cgroups", "dir", base)
	return s
}

// cgroupBase makes (or finds) the cgroup v2 folder for this agent's jobs,
// beside the agent in its own cgroup. It needs cgroup.kill (Linux 5.14).
func cgroupBase(key string) (string, error) {
	mount, err := cgroup2Mount()
	if err != nil {
		return "", err
	}
	own, err := ownCgroup()
	if err != nil {
		return "", err
	}
	base := filepath.Join(mount, own, "arcade-agent-"+key)
	if err := os.Mkdir(base, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("make %s: %w", base, err)
	}
	if _, err := os.Stat(filepath.Join(base, "cgroup.kill")); err != nil {
		_ = os.Remove(base)
		return "", fmt.Errorf("%s has no cgroup.kill (Linux 5.14 or later)", base)
	}
	return base, nil
}

// cgroup2Mount finds where the cgroup v2 hierarchy is mounted.
func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields := strings.Fields(pre)
		if ok && len(fields) >= 5 && strings.HasPrefix(post, "cgroup2 ") {
			return fields[4], nil
		}
	}
	return "", errors.New("no cgroup v2 hierarchy mounted")
}

// ownCgroup is this process's cgroup v2 path ("0::/PATH").
func ownCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, nil
		}
	}
	return "", errors.New("not in a cgroup v2 hierarchy")
}

func (s *system) describe() string {
	if s.base != "" {
		return "cgroup " + s.base
	}
	return "process groups and environment marker"
}

func (s *system) bootID() string { return s.boot }

// release removes the agent's cgroup folder if no job is left in it.
func (s *system) release() {
	if s.base != "" {
		_ = os.Remove(s.base)
	}
}

// newCgroup makes a job's cgroup; "" when there are none.
func (s *system) newCgroup(name string) string {
	if s.base == "" {
		return ""
	}
	cg := filepath.Join(s.base, name)
	if err := os.Mkdir(cg, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		s.log.Warn("cannot make the job's cgroup; finding its processes by marker instead", "dir", cg, "err", err)
		return ""
	}
	return cg
}

func (s *system) addToCgroup(cg string, pid int) error {
	return os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
}

// removeCgroup removes an emptied cgroup, waiting briefly for exiting
// members.
func (s *system) removeCgroup(cg string) error {
	if cg == "" {
		return nil
	}
	deadline := time.Now().Add(killTimeout)
	for {
		err := os.Remove(cg)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup: %w", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sweepCgroups kills everything in this agent's job cgroups and removes
// them; it returns how many processes it ended.
func (s *system) sweepCgroups() (int, error) {
	if s.base == "" {
		return 0, nil
	}
	entries, err := os.ReadDir(s.base)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		cg := filepath.Join(s.base, e.Name())
		k, err := s.kill(&record{Cgroup: cg}, false)
		n += k
		errs = append(errs, err, s.removeCgroup(cg))
	}
	return n, errors.Join(errs...)
}

// kill ends the processes of a job: its cgroup, and (without one, or when
// sweeping what an earlier life left) the processes carrying its marker or
// belonging to one of its process groups. It returns how many it killed,
// once they are gone.
func (s *system) kill(r *record, sweeping bool) (int, error) {
	if r.BootID != "" && s.boot != "" && r.BootID != s.boot {
		return 0, nil // the machine restarted since: nothing of the job runs
	}
	killed := map[int]bool{}
	deadline := time.Now().Add(killTimeout)
	for {
		var found []int
		if r.Cgroup != "" {
			found = cgroupProcs(r.Cgroup)
			if len(found) > 0 {
				_ = os.WriteFile(filepath.Join(r.Cgroup, "cgroup.kill"), []byte("1"), 0o644)
			}
		}
		if r.Cgroup == "" || sweeping {
			found = append(found, scan(r)...)
		}
		if len(found) == 0 {
			break
		}
		for _, pid := range found {
			_ = unix.Kill(pid, unix.SIGKILL)
			killed[pid] = true
		}
		reap(killed, 0)
		if time.Now().After(deadline) {
			return len(killed), fmt.Errorf("%d process(es) of the job did not end within %s", len(found), killTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	reap(killed, reapTimeout)
	return len(killed), nil
}

// cgroupProcs lists the live members of a cgroup (zombies are not members).
func cgroupProcs(cg string) []int {
	b, err := os.ReadFile(filepath.Join(cg, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			out = append(out, pid)
		}
	}
	return out
}

// procStat is what /proc/PID/stat says of a process.
type procStat struct {
	state byte
	ppid  int
	pgrp  int
	start uint64 // clock ticks after boot
}

func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	// PID (COMM) STATE PPID PGRP SESSION … STARTTIME is field 22; COMM may
	// hold spaces and parentheses, so fields are counted after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return procStat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	pgrp, _ := strconv.Atoi(f[2])
	start, _ := strconv.ParseUint(f[19], 10, 64)
	return procStat{state: f[0][0], ppid: ppid, pgrp: pgrp, start: start}, true
}

func (s *system) startTicks(pid int) uint64 {
	st, _ := readStat(pid)
	return st.start
}

// scan finds the live processes of a job in /proc: in one of its process
// groups (and started after that group's leader), or carrying its marker.
func scan(r *record) []int {
	if r.Marker == "" && len(r.Groups) == 0 {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	marker := []byte(MarkerEnv + "=" + r.Marker)
	self := os.Getpid()
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		st, ok := readStat(pid)
		if !ok || st.state == 'Z' {
			continue
		}
		member := false
		for _, g := range r.Groups {
			if st.pgrp == g.Pgid && st.start >= g.Since {
				member = true
			}
		}
		if !member && r.Marker != "" {
			env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
			if err == nil {
				for _, kv := range bytes.Split(env, []byte{0}) {
					if bytes.Equal(kv, marker) {
						member = true
						break
					}
				}
			}
		}
		if member {
			out = append(out, pid)
		}
	}
	return out
}

// reap collects the killed processes that are this process's zombies (the
// agent is a child subreaper, so a job's orphans come to it). Only a zombie
// whose parent is this process is waited for: no other waiter can take it,
// so no one else's exit status is stolen.
func reap(pids map[int]bool, wait time.Duration) {
	deadline := time.Now().Add(wait)
	self := os.Getpid()
	for {
		pending := 0
		for pid := range pids {
			st, ok := readStat(pid)
			switch {
			case !ok || st.ppid != self:
				delete(pids, pid) // gone, or someone else's to reap
			case st.state == 'Z':
				var ws unix.WaitStatus
				if got, _ := unix.Wait4(pid, &ws, unix.WNOHANG, nil); got == pid {
					delete(pids, pid)
				}
			default:
				pending++ // killed, not yet dead
			}
		}
		if pending == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lockFolder takes the data folder's lock for the life of the process (the
// kernel drops it when the process dies, however it dies).
func lockFolder(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is held by pid %s; give each agent its own --data-dir (or --work-dir)",
				ErrInUse, filepath.Dir(path), strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("agent lock: %w", err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}
