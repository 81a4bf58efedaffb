// Package jobtrack keeps, in the agent's data folder, what each running job
// holds on the machine (its processes, its workspace), so that nothing a
// job started outlives it, and what an agent killed without warning left
// behind is ended when the agent starts again.
//
// While the agent lives, a job's processes are held in a cgroup of their
// own where the machine offers one (cgroup v2, with cgroup.kill: the job's
// shell is moved into it before it runs anything, and everything it starts,
// in whatever process group or session, stays in it); the whole cgroup is
// killed at the end of each command step. Where no cgroup can be made, each
// job's processes carry a marker in their environment (ARCADE_JOB_MARKER)
// and are found by it, and by their process group, in /proc.
//
// On start, [Tracker.Sweep] ends what an earlier life left: every cgroup
// under the agent's own, every process carrying a recorded marker or
// belonging to a recorded process group (started after that group's leader,
// on the same boot), whatever the hooks of other executors end (containers
// by label), and the recorded workspaces. One lock file keeps two agents
// from sharing a data folder, which would have each sweep the other's jobs.
package jobtrack

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// MarkerEnv is the environment variable every process of a job carries.
const MarkerEnv = "ARCADE_JOB_MARKER"

// ErrInUse is returned by Open when another live agent uses the data folder.
var ErrInUse = errors.New("data folder in use by another agent")

// Leftover is a job an earlier life of the agent did not see to its end.
type Leftover struct {
	JobID     string
	Attempt   int32
	Workspace string
}

// Hook ends what one kind of executor left of the jobs an earlier life of
// the agent ran: the container executor removes the containers it labelled
// with key (Tracker.Key), say. Sweep calls it after the recorded processes
// were ended and before the workspaces are removed; left may be empty (a
// job's record is written before anything of it starts, but a hook should
// also end what it finds by its label alone).
type Hook func(ctx context.Context, key string, left []Leftover) error

// Tracker records the running jobs of one agent.
type Tracker struct {
	dir  string // one record per running job
	key  string
	lock *os.File
	log  *slog.Logger
	sys  *system

	mu    sync.Mutex
	hooks []Hook
}

// record is what is kept on disk for a running job.
type record struct {
	JobID     string    `json:"job_id"`
	Attempt   int32     `json:"attempt"`
	Workspace string    `json:"workspace"`
	Marker    string    `json:"marker"`
	BootID    string    `json:"boot_id"`
	Cgroup    string    `json:"cgroup,omitempty"`
	Groups    []group   `json:"groups,omitempty"`
	Started   time.Time `json:"started"`
}

// group is a process group a job's shell led; Since is the leader's start
// (clock ticks after boot), so that a reused group id is not mistaken for it.
type group struct {
	Pgid  int    `json:"pgid"`
	Since uint64 `json:"since"`
}

// Open takes the data folder for this agent (failing with ErrInUse while
// another agent holds it) and finds how jobs can be contained here.
func Open(dataDir string, logger *slog.Logger) (*Tracker, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(abs, "running-jobs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("job records: %w", err)
	}
	lock, err := lockFolder(filepath.Join(abs, "agent.lock"))
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(abs))
	t := &Tracker{dir: dir, key: hex.EncodeToString(sum[:6]), lock: lock, log: logger}
	t.sys = newSystem(t.key, logger)
	return t, nil
}

// Key identifies this agent's data folder (12 hex digits), for labels.
func (t *Tracker) Key() string { return t.key }

// Contained says how jobs are held: "cgroup DIR" or "process groups and
// environment marker".
func (t *Tracker) Contained() string { return t.sys.describe() }

// AddHook adds a hook that Sweep calls.
func (t *Tracker) AddHook(h Hook) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.hooks = append(t.hooks, h)
}

// Close releases the data folder.
func (t *Tracker) Close() error {
	t.sys.release()
	return t.lock.Close()
}

// Sweep ends what an earlier life of the agent left: the processes of every
// recorded job (and anything in this agent's cgroups), then what the hooks
// end, then, with removeWorkspaces, the recorded workspaces. Call it once,
// before any job starts.
func (t *Tracker) Sweep(ctx context.Context, removeWorkspaces bool) error {
	recs, errs := t.records()
	killed, err := t.sys.sweepCgroups()
	errs = append(errs, err)
	var left []Leftover
	for _, r := range recs {
		n, err := t.sys.kill(r, true)
		if err != nil {
			errs = append(errs, fmt.Errorf("job %s attempt %d: %w", r.JobID, r.Attempt, err))
		}
		killed += n
		left = append(left, Leftover{JobID: r.JobID, Attempt: r.Attempt, Workspace: r.Workspace})
	}
	if killed > 0 || len(recs) > 0 {
		t.log.Warn("ended what an earlier run of this agent left", "jobs", len(recs), "processes", killed)
	}
	t.mu.Lock()
	hooks := append([]Hook(nil), t.hooks...)
	t.mu.Unlock()
	for _, h := range hooks {
		errs = append(errs, h(ctx, t.key, left))
	}
	for _, r := range recs {
		if removeWorkspaces && r.Workspace != "" {
			if err := removeAll(r.Workspace); err != nil {
				errs = append(errs, fmt.Errorf("workspace of job %s: %w", r.JobID, err))
			} else {
				t.log.Info("removed the workspace an earlier run left", "job", r.JobID, "attempt", r.Attempt, "dir", r.Workspace)
			}
		}
		errs = append(errs, t.sys.removeCgroup(r.Cgroup))
		errs = append(errs, os.Remove(t.recordPath(r.JobID, r.Attempt)))
	}
	return errors.Join(errs...)
}

// records reads the records on disk; an unreadable one is removed.
func (t *Tracker) records() ([]*record, []error) {
	entries, err := os.ReadDir(t.dir)
	if err != nil {
		return nil, []error{err}
	}
	var out []*record
	var errs []error
	for _, e := range entries {
		p := filepath.Join(t.dir, e.Name())
		if !strings.HasSuffix(e.Name(), ".json") {
			_ = os.Remove(p) // a record half written
			continue
		}
		b, err := os.ReadFile(p)
		r := &record{}
		if err == nil {
			err = json.Unmarshal(b, r)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("job record %s: %w", e.Name(), err))
			_ = os.Remove(p)
			continue
		}
		out = append(out, r)
	}
	return out, errs
}

func (t *Tracker) recordPath(jobID string, attempt int32) string {
	return filepath.Join(t.dir, fmt.Sprintf("%s-%d.json", safeName(jobID), attempt))
}

// safeName keeps a job id usable as a file name.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, s)
}

// Job is the record of one running job attempt; it is the executor's
// Containment for the job's command steps.
type Job struct {
	t  *Tracker
	mu sync.Mutex
	r  *record
}

// Begin records a job attempt about to run in workspace, before anything
// of it exists, and makes its cgroup where there are cgroups.
func (t *Tracker) Begin(jobID string, attempt int32, workspace string) (*Job, error) {
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	r := &record{JobID: jobID, Attempt: attempt, Workspace: workspace, BootID: t.sys.bootID(), Started: time.Now(),
		Marker: fmt.Sprintf("%s.%s-%d.%s", t.key, safeName(jobID), attempt, hex.EncodeToString(nonce[:]))}
	r.Cgroup = t.sys.newCgroup(fmt.Sprintf("%s-%d", safeName(jobID), attempt))
	j := &Job{t: t, r: r}
	if err := j.save(); err != nil {
		_ = t.sys.removeCgroup(r.Cgroup)
		return nil, err
	}
	return j, nil
}

// Env is what the job's environment must carry.
func (j *Job) Env() map[string]string { return map[string]string{MarkerEnv: j.r.Marker} }

// Add puts a shell of the job (pid, leader of its process group) in the
// job's cgroup and records its group.
func (j *Job) Add(pid int) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.r.Cgroup != "" {
		if err := j.t.sys.addToCgroup(j.r.Cgroup, pid); err != nil {
			// Fall back to the marker for the rest of the job.
			j.t.log.Warn("cannot put the job in its cgroup; finding its processes by marker instead", "job", j.r.JobID, "err", err)
			_ = j.t.sys.removeCgroup(j.r.Cgroup)
			j.r.Cgroup = ""
		}
	}
	j.r.Groups = append(j.r.Groups, group{Pgid: pid, Since: j.t.sys.startTicks(pid)})
	return j.saveLocked()
}

// Kill ends every process of the job and returns once they are gone.
func (j *Job) Kill() error {
	j.mu.Lock()
	r := *j.r
	j.mu.Unlock()
	_, err := j.t.sys.kill(&r, false)
	return err
}

// End ends what is left of the job and forgets it. The caller removes the
// workspace first (a crash in between leaves the record, and the next start
// removes it).
func (j *Job) End() error {
	err := j.Kill()
	j.mu.Lock()
	defer j.mu.Unlock()
	err = errors.Join(err, j.t.sys.removeCgroup(j.r.Cgroup))
	if rerr := os.Remove(j.t.recordPath(j.r.JobID, j.r.Attempt)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

func (j *Job) save() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.saveLocked()
}

// saveLocked writes the record atomically (a temporary file renamed).
func (j *Job) saveLocked() error {
	b, err := json.Marshal(j.r)
	if err != nil {
		return err
	}
	p := j.t.recordPath(j.r.JobID, j.r.Attempt)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("job record: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("job record: %w", err)
	}
	return nil
}

// removeAll removes dir, making read-only directories writable first (a Go
// module cache, say).
func removeAll(dir string) error {
	if os.RemoveAll(dir) == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(path, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}
