package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/core/pipeline"
)

// bundleIncludes reads the files a pipeline file includes, all levels, by
// their paths relative to its directory, to be sent with it. A file that
// does not parse is left to the server to refuse (with its line).
func bundleIncludes(file string, text []byte) (map[string]string, error) {
	dir := filepath.Dir(file)
	files := map[string]string{}
	var visit func(data []byte) error
	visit = func(data []byte) error {
		p, err := pipeline.ParseYAML(data)
		if err != nil {
			return nil
		}
		for i, inc := range p.GetInclude() {
			name, err := pipeline.CleanIncludePath(inc)
			if err != nil {
				return fmt.Errorf("include[%d]: %v", i, err)
			}
			if _, done := files[name]; done {
				continue
			}
			if len(files) >= pipeline.MaxIncludes {
				return fmt.Errorf("more than %d included files", pipeline.MaxIncludes)
			}
			raw, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("include %s: no such file beside %s", name, file)
			}
			if err != nil {
				return fmt.Errorf("include %s: %w", name, err)
			}
			files[name] = string(raw)
			if err := visit(raw); err != nil {
				return err
			}
		}
		return nil
	}
	if err := visit(text); err != nil {
		return nil, err
	}
	return files, nil
}

// newPipelineLintCmd is `arcade pipeline lint FILE`: the file checked as
// the server checks it, and shown expanded (includes merged, templates
// applied, matrices expanded).
func newPipelineLintCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "lint FILE",
		Short: "Check a pipeline file and show it expanded (includes, extends, matrices); no server needed",
		Example: "  arcade pipeline lint .arcade.yaml\n" +
			"  arcade pipeline lint ci/pipeline.arcade.yaml -o json",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("read pipeline file: %w", err)
			}
			files, err := bundleIncludes(args[0], raw)
			if err != nil {
				return err
			}
			p, err := pipeline.ParseYAML(raw)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			p.IncludeFiles = files
			plan, err := pipeline.Validate(p)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], pipeline.IndexLines(raw).Annotate(err, nil))
			}
			return showExpanded(cmd.OutOrStdout(), output, plan)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "yaml or json")
	return cmd
}

// showExpanded writes an expanded pipeline as YAML (or JSON), field names
// as in the API.
func showExpanded(w io.Writer, output string, plan *pipeline.Plan) error {
	data, err := protojson.MarshalOptions{UseProtoNames: true, Indent: "  "}.Marshal(plan.Spec)
	if err != nil {
		return err
	}
	if output == "json" {
		_, err := fmt.Fprintln(w, string(data))
		return err
	}
	fmt.Fprintf(w, "# %s: %d jobs in %d stages, expanded\n", plan.Spec.GetName(), len(plan.Nodes), len(plan.Spec.GetStages()))
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(yamlNode(plan.Spec.ProtoReflect())); err != nil {
		return err
	}
	return enc.Close()
}

// yamlNode is a message as YAML, its fields in their declared order (name
// first), durations as written in pipeline files.
func yamlNode(m protoreflect.Message) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: string(fd.Name())}, yamlValue(fd, m.Get(fd)))
	}
	return n
}

func yamlValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) *yaml.Node {
	switch {
	case fd.IsList():
		n := &yaml.Node{Kind: yaml.SequenceNode}
		l := v.List()
		for i := 0; i < l.Len(); i++ {
			n.Content = append(n.Content, yamlScalarOrMessage(fd, l.Get(i)))
		}
		return n
	case fd.IsMap():
		n := &yaml.Node{Kind: yaml.MappingNode}
		var keys []string
		vals := map[string]protoreflect.Value{}
		v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			keys = append(keys, k.String())
			vals[k.String()] = mv
			return true
		})
		sort.Strings(keys)
		for _, k := range keys {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, yamlScalarOrMessage(fd.MapValue(), vals[k]))
		}
		return n
	}
	return yamlScalarOrMessage(fd, v)
}

func yamlScalarOrMessage(fd protoreflect.FieldDescriptor, v protoreflect.Value) *yaml.Node {
	if fd.Message() != nil {
		if d, ok := v.Message().Interface().(*durationpb.Duration); ok {
			return &yaml.Node{Kind: yaml.ScalarNode, Value: d.AsDuration().String()}
		}
		return yamlNode(v.Message())
	}
	if fd.Enum() != nil {
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return &yaml.Node{Kind: yaml.ScalarNode, Value: string(ev.Name())}
		}
	}
	n := &yaml.Node{}
	_ = n.Encode(v.Interface())
	return n
}

// newPipelineDecideCmds are `arcade pipeline approve RUN JOB` and
// `arcade pipeline reject RUN JOB`.
func newPipelineDecideCmds(f *clientFlags) []*cobra.Command {
	make := func(verb string, approve bool) *cobra.Command {
		var comment string
		cmd := &cobra.Command{
			Use:     verb + " RUN JOB",
			Short:   fmt.Sprintf("%s a run's approval job (type: approval); needs a write token", map[bool]string{true: "Approve", false: "Reject"}[approve]),
			Example: fmt.Sprintf("  arcade pipeline %s RUN_ID deploy-approval --comment 'checked the release notes'", verb),
			Args:    cobra.ExactArgs(2),
			RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
				var j *jobv1.JobDetail
				if approve {
					resp, err := c.jobs.ApproveJob(cmd.Context(), &jobv1.ApproveJobRequest{RunId: args[0], Job: args[1], Comment: comment})
					if err != nil {
						return err
					}
					j = resp.GetJob()
				} else {
					resp, err := c.jobs.RejectJob(cmd.Context(), &jobv1.RejectJobRequest{RunId: args[0], Job: args[1], Comment: comment})
					if err != nil {
						return err
					}
					j = resp.GetJob()
				}
				if f.output == "json" {
					return printJSON(cmd.OutOrStdout(), j)
				}
				a := j.GetApproval()
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s by %s at %s\n", j.GetName(), a.GetDecision(), a.GetBy(), a.GetAt().AsTime().Local().Format("2006-01-02 15:04:05"))
				return nil
			}),
		}
		cmd.Flags().StringVar(&comment, "comment", "", "why, recorded with the decision")
		return cmd
	}
	return []*cobra.Command{make("approve", true), make("reject", false)}
}

// newPipelineApproveDefinitionCmd is `arcade pipeline approve-definition
// RUN`: a run of a pull request from a fork followed its base branch's
// definition; this starts one following the pull request's own.
func newPipelineApproveDefinitionCmd(f *clientFlags) *cobra.Command {
	var comment string
	cmd := &cobra.Command{
		Use:   "approve-definition RUN",
		Short: "Run a fork's pull request with its own definition (a new run, still untrusted); needs a write token",
		Long: "A pull request from a fork runs its base branch's definition (and included files). " +
			"Once someone with a write token has read the pull request's own, this starts a new run of the same commit " +
			"following it: still of untrusted origin (no secret values, no trusted agent, no cache saved).",
		Example: "  arcade pipeline approve-definition RUN_ID --comment 'read the diff'",
		Args:    cobra.ExactArgs(1),
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			resp, err := c.jobs.ApproveRunDefinition(cmd.Context(), &jobv1.ApproveRunDefinitionRequest{RunId: args[0], Comment: comment})
			if err != nil {
				return err
			}
			r := resp.GetRun()
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), r)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "run %s (#%d) started: %s\n", r.GetId(), r.GetNumber(), r.GetDefinition())
			return nil
		}),
	}
	cmd.Flags().StringVar(&comment, "comment", "", "why, recorded with the run")
	return cmd
}
