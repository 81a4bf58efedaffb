package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/core/jobstep"
	"github.com/go-arcade/arcade/core/plugininput"
	"github.com/go-arcade/arcade/core/stepresult"
	"github.com/go-arcade/arcade/host"
)

// workspaceGuest is where a plugin sees the workspace, as on agents.
const workspaceGuest = "/workspace"

// maxRunInput bounds --input (a file or standard input) of plugin run.
const maxRunInput = 64 << 20

func newPluginRunCmd() *cobra.Command {
	var (
		workspace, input, name string
		cacheDir               string
		configs, hosts, with   []string
		timeout                time.Duration
		memoryMiB              uint32
	)
	cmd := &cobra.Command{
		Use:   "run FILE.wasm [FUNCTION] [--workspace DIR] [--config K=V]... [--allow-host H]... [--with K=V]... [--input JSON|@FILE|-]",
		Short: "Run a plugin function locally, under the host, grants and limits of servers and agents",
		Long: `Run loads FILE.wasm in this process with the host servers and agents use and
calls FUNCTION (default: the function a step of the plugin's kind calls: ci build,
security scan, cd deploy, custom execute). Nothing is granted unless asked:
--workspace mounts DIR read-write at /workspace, as an agent mounts a job's
workspace; --allow-host grants a host to pdk.Fetch; --config sets the plugin's
config; --timeout and --memory-mib are the limits (defaults: the host's).

Without --input the request is the one a pipeline step sends: a StepRequest (a
DeployRequest for cd, an ExecuteRequest for custom) whose context names
/workspace and whose params are the --with values. The plugin's log goes to
standard error, its answer (JSON) to standard output. A step function's answer
is also shown as the job's log would show it, and a failed step ends the command
with status 1.`,
		Example: `  arcade plugin run plugins/go-lint.wasm lint --workspace conf.d --with exclude=vendor
  arcade plugin run plugins/webhook.wasm send --config url=http://127.0.0.1:9/hook --input '{"title":"hi"}' || echo refused: host not granted`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			data, err := readBounded(path, host.DefaultMaxModuleBytes)
			if err != nil {
				return err
			}
			cfg, err := keyValues("--config", configs)
			if err != nil {
				return err
			}
			params, err := keyValues("--with", with)
			if err != nil {
				return err
			}
			if name == "" {
				name = strings.TrimSuffix(filepath.Base(path), ".wasm")
			}
			spec := host.Spec{Name: name, Path: path, Config: cfg}
			spec.Grants.AllowedHosts = hosts
			spec.Grants.MaxInstances = 1
			spec.Grants.Timeout = host.Duration(timeout)
			spec.Grants.MemoryLimitMiB = memoryMiB
			if workspace != "" {
				abs, err := filepath.Abs(workspace)
				if err != nil {
					return fmt.Errorf("--workspace: %w", err)
				}
				if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
					return fmt.Errorf("--workspace %s: not a folder", workspace)
				}
				spec.Grants.AllowedPaths = []host.PathGrant{{Host: abs, Guest: workspaceGuest, Mode: "rw"}}
			}

			stderr := cmd.ErrOrStderr()
			var opts []host.Option
			if cacheDir != "" {
				opts = append(opts, host.WithCacheDir(cacheDir))
			}
			runner := host.NewRunner(slog.New(&runLog{w: stderr}), opts...)
			defer runner.Close(context.Background())
			loaded, err := runner.Load(cmd.Context(), spec, data)
			if err != nil {
				return err
			}
			defer loaded.Close()
			md := loaded.Metadata()
			kind := host.KindName(md.GetKind())
			fn := jobstep.DefaultFunction(kind)
			if len(args) == 2 {
				fn = args[1]
			}
			if fn == "" {
				return fmt.Errorf("%s is a %s plugin: name the function to call (one of %s)", name, kind, strings.Join(md.GetFunctions(), ", "))
			}
			var in []byte
			if cmd.Flags().Changed("input") {
				if len(with) > 0 {
					return errors.New("--input: give the whole input or --with values, not both")
				}
				s, err := readRunInput(input, cmd.InOrStdin())
				if err != nil {
					return err
				}
				in = []byte(s)
			} else {
				// As at pipeline creation: with: against the params the
				// plugin declares.
				if errs := plugininput.Check("param", md.GetParams(), params); len(errs) > 0 {
					return fmt.Errorf("--with: %s", plugininput.Join(errs))
				}
				sc := &pluginv1.StepContext{Step: name, Env: map[string]string{}}
				if workspace != "" {
					sc.Workspace = workspaceGuest
					sc.Env["ARCADE_WORKSPACE"] = workspaceGuest
				}
				if in, err = protojson.Marshal(stepresult.Request(kind, fn, sc, params)); err != nil {
					return fmt.Errorf("encode the request: %w", err)
				}
			}
			fmt.Fprintf(stderr, "plugin %s %s (%s, sha256 %s), function %s\n", name, md.GetVersion(), kind, loaded.SHA256()[:12], fn)

			start := time.Now()
			out, err := loaded.Call(host.WithLogger(cmd.Context(), slog.New(&runLog{w: stderr})), fn, in)
			if err != nil {
				return err
			}
			var pretty bytes.Buffer
			if json.Indent(&pretty, out, "", "  ") == nil {
				fmt.Fprintln(cmd.OutOrStdout(), pretty.String())
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), string(out))
			}
			fmt.Fprintf(stderr, "%s.%s answered in %d ms\n", name, fn, time.Since(start).Milliseconds())
			return runOutcome(stderr, name, kind, fn, out)
		},
	}
	cmd.Flags().StringVar(&workspace, "workspace", "", "folder mounted read-write at /workspace (default: none)")
	cmd.Flags().StringArrayVar(&configs, "config", nil, "one config value K=V (repeatable)")
	cmd.Flags().StringArrayVar(&hosts, "allow-host", nil, "a host the plugin may fetch from (repeatable; as allowed_hosts)")
	cmd.Flags().StringArrayVar(&with, "with", nil, "one step param K=V (repeatable; as a step's with:)")
	cmd.Flags().StringVar(&input, "input", "", "the whole input JSON, @FILE to read a file, - for standard input")
	cmd.Flags().StringVar(&name, "name", "", "the plugin's name (default: the file's name without .wasm)")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "the call's timeout (default: the host's)")
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", `compiled modules are kept here (default: the user cache folder; "-": not kept)`)
	cmd.Flags().Uint32Var(&memoryMiB, "memory-mib", 0, "the plugin's memory limit in MiB (default: the host's)")
	return cmd
}

// runOutcome shows a step function's answer (execute's too) as the job's
// log does and turns a failed step into exit status 1.
func runOutcome(w io.Writer, name, kind, fn string, out []byte) error {
	switch {
	case isStepFunction(kind, fn) || fn == "execute":
		// As an agent reads it: an ExecuteResponse's status, messages
		// and files are a StepResponse's.
		resp := new(pluginv1.StepResponse)
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(out, resp); err != nil {
			return fmt.Errorf("plugin %s: unreadable response: %w", name, err)
		}
		for _, l := range stepresult.Lines(resp) {
			fmt.Fprintln(w, l.Text)
		}
		if !stepresult.Passed(resp) {
			fmt.Fprintln(w, stepresult.Failure(name, resp))
			return exitError(1)
		}
	}
	return nil
}

// isStepFunction says whether fn of a plugin of kind answers a StepResponse.
func isStepFunction(kind, fn string) bool {
	switch kind {
	case "ci":
		return fn == "build" || fn == "test" || fn == "lint"
	case "security":
		return fn == "scan" || fn == "audit"
	case "cd":
		return fn == "deploy" || fn == "rollback"
	}
	return false
}

func keyValues(flag string, items []string) (map[string]string, error) {
	out := make(map[string]string, len(items))
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		if k = strings.TrimSpace(k); !ok || k == "" {
			return nil, fmt.Errorf("%s %q: want K=V", flag, it)
		}
		out[k] = v
	}
	return out, nil
}

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}

func readRunInput(arg string, stdin io.Reader) (string, error) {
	switch {
	case arg == "-":
		b, err := io.ReadAll(io.LimitReader(stdin, maxRunInput+1))
		if err == nil && len(b) > maxRunInput {
			err = fmt.Errorf("--input: larger than %d bytes", maxRunInput)
		}
		return string(b), err
	case strings.HasPrefix(arg, "@"):
		b, err := readBounded(arg[1:], maxRunInput)
		if err != nil {
			return "", fmt.Errorf("--input: %w", err)
		}
		return string(b), nil
	}
	return arg, nil
}

// runLog writes a plugin's log lines to w, one per line, with their level;
// the host's own note of a failed call is left out (the command reports it).
type runLog struct {
	mu sync.Mutex
	w  io.Writer
}

func (h *runLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *runLog) Handle(_ context.Context, rec slog.Record) error {
	diagnostic := false
	var extra strings.Builder
	rec.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "err":
			diagnostic = true
		case "plugin", "function", "stream":
		default:
			fmt.Fprintf(&extra, " %s=%v", a.Key, a.Value)
		}
		return true
	})
	if diagnostic || rec.Level < slog.LevelInfo && rec.Message == "" {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, line := range strings.Split(strings.TrimRight(rec.Message, "\n"), "\n") {
		fmt.Fprintf(h.w, "%s %s%s\n", strings.ToLower(rec.Level.String()), line, extra.String())
		extra.Reset()
	}
	return nil
}

func (h *runLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *runLog) WithGroup(string) slog.Handler      { return h }
