package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// isPipelineFile reports whether a run file is a pipeline (it has stages)
// rather than a single job.
func isPipelineFile(raw []byte) bool {
	var top map[string]any
	if yaml.Unmarshal(raw, &top) != nil {
		return false
	}
	_, ok := top["stages"]
	return ok
}

// runPipeline creates (or updates) the pipeline of a file, triggers it,
// prints each job's log as it runs, prefixed with the job's name, and the
// run's table at the end; it returns an exitError unless the run succeeded.
func (c *api) runPipeline(ctx context.Context, file string, w io.Writer) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read pipeline file: %w", err)
	}
	created, err := c.jobs.CreatePipeline(ctx, &jobv1.CreatePipelineRequest{Yaml: string(raw)})
	var p *jobv1.PipelineDetail
	switch {
	case status.Code(err) == codes.AlreadyExists:
		updated, err := c.jobs.UpdatePipeline(ctx, &jobv1.UpdatePipelineRequest{Yaml: string(raw)})
		if err != nil {
			return fmt.Errorf("update pipeline: %w", err)
		}
		p = updated.GetPipeline()
	case err != nil:
		return fmt.Errorf("create pipeline: %w", err)
	default:
		p = created.GetPipeline()
	}
	return c.followRun(ctx, p, &jobv1.TriggerPipelineRequest{PipelineId: p.GetId()}, w)
}

// followRun triggers a run of p, prints each job's log as it runs,
// prefixed with the job's name, and the run's table at the end; it returns
// an exitError unless the run succeeded.
func (c *api) followRun(ctx context.Context, p *jobv1.PipelineDetail, req *jobv1.TriggerPipelineRequest, w io.Writer) error {
	tr, err := c.jobs.TriggerPipeline(ctx, req)
	if err != nil {
		return fmt.Errorf("trigger pipeline: %w", err)
	}
	run := tr.GetRun()
	fmt.Fprintf(os.Stderr, "pipeline %s run #%d (%s) started\n", p.GetName(), run.GetNumber(), run.GetId())
	stream, err := jobv1.NewStreamServiceClient(c.conn).StreamPipelineStatus(ctx, &jobv1.StreamPipelineStatusRequest{RunId: run.GetId()})
	if err != nil {
		return fmt.Errorf("watch run: %w", err)
	}
	var (
		mu        sync.Mutex // one line at a time on w
		wg        sync.WaitGroup
		following = map[string]bool{}
		width     = 0
	)
	for _, j := range run.GetJobs() {
		width = max(width, len(j.GetName()))
	}
	color := isTerminal(w)
	for {
		resp, err := stream.Recv()
		if err != nil {
			break // the run ended (the stream closes) or the server went away
		}
		run = resp.GetRun()
		for _, j := range run.GetJobs() {
			if j.GetId() == "" || following[j.GetId()] {
				continue
			}
			following[j.GetId()] = true
			width = max(width, len(j.GetName()))
			wg.Go(func() { c.prefixLog(ctx, j, &mu, w, width, color) })
		}
	}
	wg.Wait()
	fmt.Fprintln(w)
	if err := showRun(w, "table", run); err != nil {
		return err
	}
	if run.GetStatus() != agentv1.JobStatus_JOB_STATUS_SUCCESS {
		return exitError(1)
	}
	return nil
}

// prefixLog prints a job's log as it arrives, each line prefixed with the
// job's name.
func (c *api) prefixLog(ctx context.Context, j *jobv1.JobDetail, mu *sync.Mutex, w io.Writer, width int, color bool) {
	stream, err := jobv1.NewStreamServiceClient(c.conn).StreamJobLog(ctx, &jobv1.StreamJobLogRequest{JobId: j.GetId(), Follow: true})
	if err != nil {
		return
	}
	prefix := fmt.Sprintf("%-*s | ", width, j.GetName())
	for {
		resp, err := stream.Recv()
		if err != nil {
			return
		}
		mu.Lock()
		for _, l := range resp.GetLines() {
			fmt.Fprint(w, prefix)
			printLine(w, l, color)
		}
		mu.Unlock()
		if resp.GetFinalStatus() != agentv1.JobStatus_JOB_STATUS_UNSPECIFIED {
			return
		}
	}
}
