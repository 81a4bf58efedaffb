package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-arcade/arcade/agent/executor"
	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	"github.com/go-arcade/arcade/core/pipeline"
	"github.com/go-arcade/arcade/internal/confine"
)

// The phases that carry data between jobs: inputs (the artifacts of
// upstream jobs, restored into the workspace before the steps) and outputs
// (KEY=value lines the steps write to $ARCADE_OUTPUT, and plugin steps'
// outputs, reported with the job's end).

// note writes a system line into the job's log.
func (r *jobRun) note(format string, args ...any) {
	r.ship.add(executor.Line{Stream: executor.System, Text: fmt.Sprintf(format, args...), Time: time.Now()})
}

// inputsPhase restores the job's inputs into its workspace: each is
// streamed from the server, written only inside the workspace (through
// the confined Dir: a path or a link leading out is refused), and checked
// against its sha256; a mismatch fails the job and leaves nothing of it.
func inputsPhase(ctx context.Context, a *Agent, r *jobRun) phaseResult {
	inputs := r.job.GetInputs()
	if len(inputs) == 0 {
		return phaseResult{}
	}
	ws, err := confine.Open(r.ws)
	if err != nil {
		return failPhase(fmt.Errorf("open workspace: %w", err))
	}
	defer ws.Close()
	for _, in := range inputs {
		began := time.Now()
		if err := a.restoreInput(ctx, r, ws, in); err != nil {
			if ctx.Err() != nil {
				return phaseResult{res: &executor.Result{Outcome: executor.Cancelled, ExitCode: -1, Err: context.Cause(ctx)}}
			}
			r.note("input %s of job %s refused: %v", in.GetPath(), in.GetJobName(), err)
			return phaseResult{res: &executor.Result{Outcome: executor.Failed, ExitCode: -1, Err: err},
				message: fmt.Sprintf("inputs: %s of job %s: %v", in.GetPath(), in.GetJobName(), err)}
		}
		r.note("input %s of job %s restored (%s, sha256 %s) in %s", in.GetPath(), in.GetJobName(), humanBytes(in.GetSizeBytes()), in.GetSha256(),
			time.Since(began).Round(time.Millisecond))
	}
	return phaseResult{}
}

func failPhase(err error) phaseResult {
	return phaseResult{res: &executor.Result{Outcome: executor.Failed, ExitCode: -1, Err: err}}
}

// restoreInput downloads one input into a temporary name beside its place,
// hashing it on the way, and renames it into place once its size and
// sha256 are those announced.
func (a *Agent) restoreInput(ctx context.Context, r *jobRun, ws *confine.Dir, in *agentv1.JobInput) error {
	name := path.Clean(in.GetPath())
	if name == "." || path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
		return fmt.Errorf("path %q leads outside the workspace", in.GetPath())
	}
	if dir := path.Dir(name); dir != "." {
		if err := ws.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmp := path.Join(path.Dir(name), ".arcade-input-"+path.Base(name))
	f, err := ws.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		f.Close()
		if !ok {
			_ = ws.Remove(tmp)
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := a.rpc.DownloadInput(ctx, &agentv1.DownloadInputRequest{JobId: r.job.GetId(), Attempt: r.job.GetAttempt(),
		InputJobId: in.GetJobId(), Path: in.GetPath()})
	if err != nil {
		return err
	}
	n, got, err := receive(func() ([]byte, error) {
		msg, err := stream.Recv()
		return msg.GetData(), err
	}, f, in.GetSizeBytes())
	if err != nil {
		return err
	}
	if n != in.GetSizeBytes() {
		return fmt.Errorf("%d bytes received, %d announced", n, in.GetSizeBytes())
	}
	if got != in.GetSha256() {
		return fmt.Errorf("sha256 mismatch: the bytes hash to %s, the artifact was stored as %s", got, in.GetSha256())
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := ws.Rename(tmp, name); err != nil {
		return err
	}
	ok = true
	return nil
}

// outputFile is the name of the outputs file in a job's scratch directory.
const outputFile = "output"

// outputsPhase reads what the job set: the declared outputs among the
// KEY=value lines of $ARCADE_OUTPUT (KEY<<DELIM … DELIM for several
// lines) and the outputs of its plugin steps. Outputs holding one of the
// job's secrets are marked, to be masked wherever they are shown.
func outputsPhase(_ context.Context, _ *Agent, r *jobRun) phaseResult {
	declared := r.job.GetOutputs()
	if len(declared) == 0 {
		return phaseResult{}
	}
	out := map[string]string{}
	for k, v := range r.pluginOutputs {
		out[k] = v
	}
	dir, err := confine.OpenReadOnly(scratchDir(r.ws))
	if err == nil {
		defer dir.Close()
		data, err := readBounded(dir, outputFile, pipeline.MaxOutputBytes)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return failPhase(fmt.Errorf("$ARCADE_OUTPUT: %w", err))
		default:
			lines, err := ParseOutputs(data)
			if err != nil {
				return failPhase(fmt.Errorf("$ARCADE_OUTPUT: %w", err))
			}
			for k, v := range lines {
				out[k] = v
			}
		}
	}
	var ignored []string
	for k := range out {
		if !slices.Contains(declared, k) {
			ignored = append(ignored, k)
			delete(out, k)
		}
	}
	if len(ignored) > 0 {
		sort.Strings(ignored)
		r.note("outputs %s ignored: the job declares %s", strings.Join(ignored, ", "), strings.Join(declared, ", "))
	}
	var secret []string
	for k, v := range out {
		for _, s := range r.job.GetSecrets() {
			if len(s) >= 3 && strings.Contains(v, s) {
				secret = append(secret, k)
				break
			}
		}
	}
	sort.Strings(secret)
	r.outputs, r.secretOutputs = out, secret
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if slices.Contains(secret, k) {
			r.note("output %s set (it holds a secret: masked)", k)
		} else {
			r.note("output %s=%s", k, out[k])
		}
	}
	return phaseResult{}
}

// readBounded reads a file of dir, refusing one larger than max.
func readBounded(dir *confine.Dir, name string, max int) ([]byte, error) {
	f, err := dir.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(data) > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return data, nil
}

// ParseOutputs reads an outputs file: KEY=value lines, and KEY<<DELIM
// followed by lines up to a line DELIM for a value of several lines. Blank
// lines are skipped; a later line of the same key wins.
func ParseOutputs(data []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), pipeline.MaxOutputBytes+1)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if k, delim, ok := strings.Cut(line, "<<"); ok && !strings.Contains(k, "=") {
			if !pipeline.OutputName(k) || delim == "" {
				return nil, fmt.Errorf("line %d: want KEY<<DELIMITER", n)
			}
			var b strings.Builder
			closed := false
			for sc.Scan() {
				n++
				l := strings.TrimSuffix(sc.Text(), "\r")
				if l == delim {
					closed = true
					break
				}
				if b.Len() > 0 {
					b.WriteByte('\n')
				}
				b.WriteString(l)
			}
			if !closed {
				return nil, fmt.Errorf("line %d: %s<<%s is not closed by a line %s", n, k, delim, delim)
			}
			out[k] = b.String()
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !pipeline.OutputName(k) {
			return nil, fmt.Errorf("line %d: want KEY=value (a name of letters, digits, _ and -)", n)
		}
		out[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
