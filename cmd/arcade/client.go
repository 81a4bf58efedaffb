package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/client"
	"github.com/go-arcade/arcade/core/ansi"
)

// api is a connection to a server for client commands.
type api struct {
	conn   *grpc.ClientConn
	jobs   jobv1.JobServiceClient
	agents agentv1.AgentServiceClient
}

func dialAPI(addr, token string, t client.TLS) (*api, error) {
	if token == "" {
		return nil, noTokenError()
	}
	conn, err := client.DialTLS(addr, client.Static(token), t)
	if err != nil {
		return nil, err
	}
	return &api{conn: conn, jobs: jobv1.NewJobServiceClient(conn), agents: agentv1.NewAgentServiceClient(conn)}, nil
}

func (c *api) close() { c.conn.Close() }

// clientFlags are the connection flags of client commands.
type clientFlags struct {
	server string
	token  string
	output string
	tlsCA  string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	f.connFlags(cmd.PersistentFlags())
	cmd.PersistentFlags().StringVarP(&f.output, "output", "o", "table", "output: table or json")
}

// connFlags adds the connection flags. The token's default is read from
// the environment when the command runs, never shown: help would print it.
func (f *clientFlags) connFlags(fs *pflag.FlagSet) {
	def := os.Getenv("ARCADE_SERVER")
	if def == "" {
		def = "127.0.0.1:9090"
	}
	fs.StringVar(&f.server, "server", def, "server address, host:port of its gRPC listener (env ARCADE_SERVER)")
	fs.StringVar(&f.token, "token", "", "API token (default: env ARCADE_API_TOKEN)")
	fs.StringVar(&f.tlsCA, "tls-ca", os.Getenv("ARCADE_TLS_CA"), "reach the server over TLS, trusting this CA (env ARCADE_TLS_CA)")
}

// apiToken is --token, else ARCADE_API_TOKEN.
func (f *clientFlags) apiToken() string {
	if f.token != "" {
		return f.token
	}
	return os.Getenv("ARCADE_API_TOKEN")
}

func (f *clientFlags) dial() (*api, error) {
	if f.output != "table" && f.output != "json" {
		return nil, fmt.Errorf("--output: want table or json, got %q", f.output)
	}
	return dialAPI(f.server, f.apiToken(), client.TLS{CAFile: f.tlsCA})
}

// noTokenError says how to get a token; it points to the credentials file
// only when that file holds an API token (a server given its tokens from
// elsewhere strikes it out there).
func noTokenError() error {
	dataDir := os.Getenv("ARCADE_DATA_DIR")
	if dataDir == "" {
		dataDir = "data"
	}
	path := filepath.Join(dataDir, "credentials.env")
	if b, err := os.ReadFile(path); err == nil {
		for line := range strings.Lines(string(b)) {
			if strings.HasPrefix(line, "ARCADE_API_TOKEN=") {
				return fmt.Errorf("no API token: set ARCADE_API_TOKEN or --token; the server's generated token is in %s (set -a; . %s; set +a)", path, path)
			}
		}
	}
	return errors.New("no API token: set ARCADE_API_TOKEN or --token to the API token of the server (api_token in its configuration, or the ARCADE_API_TOKEN it was started with)")
}

// runAndFollow creates a job, prints its log until it ends and returns an
// exitError unless it succeeded.
func (c *api) runAndFollow(ctx context.Context, req *jobv1.CreateJobRequest, w io.Writer) error {
	resp, err := c.jobs.CreateJob(ctx, req)
	if err != nil {
		return fmt.Errorf("create job: %w", err)
	}
	j := resp.GetJob()
	fmt.Fprintf(os.Stderr, "job %s (%s) created\n", j.GetId(), j.GetName())
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go c.explainWhileWaiting(wctx, j.GetId(), whyDelay, os.Stderr)
	return c.follow(ctx, j.GetId(), 0, w)
}

// whyDelay is how long a followed job may wait in the queue before the
// reason is printed.
const whyDelay = 5 * time.Second

// explainWhileWaiting prints why a job waits (ExplainJob's summary) once
// it has waited for after, and again when the reason changes, until the job
// leaves the queue or ctx ends. The follower keeps waiting meanwhile.
func (c *api) explainWhileWaiting(ctx context.Context, jobID string, after time.Duration, w io.Writer) {
	last := ""
	for wait := after; ; wait = 30 * time.Second {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		resp, err := c.jobs.ExplainJob(ctx, &jobv1.ExplainJobRequest{JobId: jobID})
		if err != nil || resp.GetJob().GetStatus() != agentv1.JobStatus_JOB_STATUS_PENDING {
			return
		}
		if s := resp.GetSummary(); s != last {
			last = s
			fmt.Fprintf(w, "job %s still waits: %s (arcade job why %s shows each agent; still waiting)\n", jobID, s, jobID)
		}
	}
}

// follow prints a job's log as it grows (StreamJobLog), until the job ends;
// an attempt that is retried is followed by the next one. It returns an
// exitError unless the job succeeded.
func (c *api) follow(ctx context.Context, jobID string, attempt int32, w io.Writer) error {
	color := isTerminal(w)
	streams := jobv1.NewStreamServiceClient(c.conn)
	if attempt == 0 {
		jr, err := c.jobs.GetJob(ctx, &jobv1.GetJobRequest{JobId: jobID})
		if err != nil {
			return fmt.Errorf("get job: %w", err)
		}
		attempt = jr.GetJob().GetAttempt()
	}
	next := int64(1)
	for {
		stream, err := streams.StreamJobLog(ctx, &jobv1.StreamJobLogRequest{JobId: jobID, Attempt: attempt, FromLine: next, Follow: true})
		if err != nil {
			return fmt.Errorf("follow log: %w", err)
		}
		ended := false
		for !ended {
			resp, err := stream.Recv()
			if err != nil {
				if status.Code(err) == codes.Unavailable && ctx.Err() == nil {
					time.Sleep(time.Second) // the server restarts: resume where we were
					break
				}
				return fmt.Errorf("follow log: %w", err)
			}
			for _, l := range resp.GetLines() {
				printLine(w, l, color)
				next = l.GetLineNumber() + 1
			}
			ended = resp.GetFinalStatus() != agentv1.JobStatus_JOB_STATUS_UNSPECIFIED
		}
		if !ended {
			continue
		}
		jr, err := c.jobs.GetJob(ctx, &jobv1.GetJobRequest{JobId: jobID})
		if err != nil {
			return fmt.Errorf("get job: %w", err)
		}
		j := jr.GetJob()
		if j.GetAttempt() > attempt {
			fmt.Fprintf(os.Stderr, "%s\nfollowing attempt %d\n", j.GetMessage(), j.GetAttempt())
			attempt, next = j.GetAttempt(), 1
			continue
		}
		return outcome(j)
	}
}

// outcome prints a job's end and maps it to an exit status.
func outcome(j *jobv1.JobDetail) error {
	took := ""
	if j.GetStartedAt() != nil && j.GetFinishedAt() != nil {
		took = " in " + j.GetFinishedAt().AsTime().Sub(j.GetStartedAt().AsTime()).Round(time.Millisecond).String()
	}
	msg := ""
	if j.GetMessage() != "" {
		msg = ": " + j.GetMessage()
	}
	fmt.Fprintf(os.Stderr, "job %s %s%s (attempt %d, agent %s)%s\n", j.GetId(), statusName(j.GetStatus()), took, j.GetAttempt(), j.GetAgentName(), msg)
	if j.GetStatus() == agentv1.JobStatus_JOB_STATUS_SUCCESS {
		return nil
	}
	return exitError(1)
}

const (
	ansiReset = "\x1b[0m"
	ansiRed   = "\x1b[31m"
	ansiDim   = "\x1b[2m"
	ansiCyan  = "\x1b[36m"
)

// printLine prints one log line. The job's own colours (SGR) are kept,
// every other escape sequence (cursor movement, titles, links…) and
// control character is dropped: a log must not drive the reader's
// terminal.
func printLine(w io.Writer, l *agentv1.LogChunk, color bool) {
	content := ansi.KeepColours(l.GetContent())
	if !color {
		prefix := ""
		if l.GetStream() == agentv1.LogStream_LOG_STREAM_STDERR {
			prefix = "stderr| "
		}
		fmt.Fprintf(w, "%s%s\n", prefix, content)
		return
	}
	switch {
	case l.GetStream() == agentv1.LogStream_LOG_STREAM_SYSTEM:
		fmt.Fprintf(w, "%s%s%s\n", ansiCyan, content, ansiReset)
	case l.GetStream() == agentv1.LogStream_LOG_STREAM_STDERR, l.GetLevel() >= agentv1.LogLevel_LOG_LEVEL_ERROR:
		fmt.Fprintf(w, "%s%s%s\n", ansiRed, content, ansiReset)
	case l.GetLevel() == agentv1.LogLevel_LOG_LEVEL_DEBUG:
		fmt.Fprintf(w, "%s%s%s\n", ansiDim, content, ansiReset)
	default:
		fmt.Fprintln(w, content)
	}
}

// withAPI turns a command body that needs a connection into a RunE: it
// dials with the command's flags and closes the connection afterwards.
func (f *clientFlags) withAPI(run func(cmd *cobra.Command, args []string, c *api) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := f.dial()
		if err != nil {
			return err
		}
		defer c.close()
		return run(cmd, args, c)
	}
}
