// Package contracttest is the one contract test suite of plugins, kind by
// kind, whatever their language (docs/plugin-contracts.md): Run loads a
// built module under Arcade's host and checks that its metadata is well
// formed, that every function of its kind answers the documented request
// with the documented answer or a typed error, and that a request that
// does not parse, or a function that does not exist, ends in a typed error
// that leaves the plugin working.
package contracttest

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/host/pdktest"
	"github.com/go-arcade/arcade/pdk"
)

var (
	nameRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	versionRe = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$`)
	keyRe     = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*(\.\*)?$`)
)

// inputTypes are the declared input types (empty: string).
var inputTypes = []string{"", "string", "bool", "number"}

// broken are the reasons a call must never end with, whatever the request:
// the plugin itself broke or answered what is not its contract's answer.
var broken = []host.Reason{host.ErrCrashed, host.ErrOutOfMemory, host.ErrStackOverflow, host.ErrBadOutput, host.ErrTimeout, host.ErrWrongKind}

// Run checks the module wasm against the contract of opts.Kind, loaded
// with opts (config and grants the plugin needs to load), and fails t with
// every breach Check finds.
func Run(t *testing.T, wasm string, opts pdktest.Options) {
	t.Helper()
	kind, ok := host.ParseKind(opts.Kind)
	if !ok {
		t.Fatalf("contracttest: kind %q is no plugin kind", opts.Kind)
	}
	for _, err := range Check(pdktest.Load(t, wasm, opts), kind) {
		t.Error(err)
	}
}

// Check runs the contract of kind over a loaded plugin and returns what
// breaks it, one error per breach.
func Check(p *pdktest.Plugin, kind pluginv1.Kind) []error {
	var errs []error
	md := p.Metadata()
	if err := checkMetadata(md, kind); err != nil {
		errs = append(errs, err)
	}
	// metadata answers again, the same (it is called at each load).
	var raw json.RawMessage
	var again pluginv1.PluginMetadata
	if err := p.Call(host.MetadataFunction, nil, &raw); err != nil {
		errs = append(errs, fmt.Errorf("metadata called again: %w", err))
	} else if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, &again); err != nil {
		errs = append(errs, fmt.Errorf("metadata called again answers what is no PluginMetadata: %w\n%s", err, raw))
	} else if again.GetName() != md.GetName() || again.GetVersion() != md.GetVersion() || again.GetKind() != md.GetKind() {
		errs = append(errs, fmt.Errorf("metadata called again answers %s %s %v, first %s %s %v", again.GetName(), again.GetVersion(), again.GetKind(), md.GetName(), md.GetVersion(), md.GetKind()))
	}

	for _, fn := range host.RequiredFunctions(kind) {
		req, resp := request(kind, fn)
		if err := p.Call(fn, req, resp); err != nil {
			errs = append(errs, typed(fn+" with a documented request", err)...)
		} else if st, ok := status(resp); !ok {
			errs = append(errs, fmt.Errorf("%s answered status %q, not one of the contract's", fn, st))
		}
		var out json.RawMessage
		if err := p.Call(fn, []byte(`{"this is": not json`), &out); err != nil {
			errs = append(errs, typed(fn+" with a request that does not parse", err)...)
		}
		if err := p.Call(host.MetadataFunction, nil, nil); err != nil {
			errs = append(errs, fmt.Errorf("the plugin no longer answers metadata after %s: %w", fn, err))
		}
	}

	if err := p.Call("no_such_function", nil, nil); !errors.Is(err, host.ErrUnknownFunction) {
		errs = append(errs, fmt.Errorf("calling a function the plugin does not export: %v, want %v", err, host.ErrUnknownFunction))
	}
	return errs
}

// checkMetadata checks what every plugin's metadata must say.
func checkMetadata(md *pluginv1.PluginMetadata, kind pluginv1.Kind) error {
	var errs []error
	if !nameRe.MatchString(md.GetName()) {
		errs = append(errs, fmt.Errorf("metadata name %q: want lower case letters, digits, '.', '_', '-', up to 63", md.GetName()))
	}
	if md.GetKind() != kind {
		errs = append(errs, fmt.Errorf("metadata kind %v, loaded as %v", md.GetKind(), kind))
	}
	if !versionRe.MatchString(md.GetVersion()) {
		errs = append(errs, fmt.Errorf("metadata version %q: want MAJOR.MINOR.PATCH", md.GetVersion()))
	}
	if !slices.Contains(host.SupportedContracts, md.GetContractVersion()) {
		errs = append(errs, fmt.Errorf("metadata contractVersion %q: want one of %v", md.GetContractVersion(), host.SupportedContracts))
	}
	for _, fn := range host.RequiredFunctions(kind) {
		if !slices.Contains(md.GetFunctions(), fn) {
			errs = append(errs, fmt.Errorf("metadata functions %v: %s of kind %s missing", md.GetFunctions(), fn, host.KindName(kind)))
		}
	}
	if md.GetDescription() == "" {
		errs = append(errs, errors.New("metadata description: empty (plugin list and plugin info show it)"))
	}
	for field, keys := range map[string][]*pluginv1.PluginInput{"params": md.GetParams(), "config": md.GetConfig()} {
		seen := map[string]bool{}
		for i, k := range keys {
			switch {
			case !keyRe.MatchString(k.GetName()):
				errs = append(errs, fmt.Errorf("metadata %s[%d].name %q: not a key name", field, i, k.GetName()))
			case seen[k.GetName()]:
				errs = append(errs, fmt.Errorf("metadata %s[%d].name %q: declared twice", field, i, k.GetName()))
			case !slices.Contains(inputTypes, k.GetType()):
				errs = append(errs, fmt.Errorf("metadata %s[%d] (%s).type %q: want string, bool or number", field, i, k.GetName(), k.GetType()))
			}
			seen[k.GetName()] = true
		}
	}
	return errors.Join(errs...)
}

// typed returns what is wrong with err: it must be the host's typed
// error, for a reason that is not the plugin breaking.
func typed(what string, err error) []error {
	var he *host.Error
	if !errors.As(err, &he) {
		return []error{fmt.Errorf("%s: error %v (%T) is not a *host.Error", what, err, err)}
	}
	for _, r := range broken {
		if errors.Is(err, r) {
			return []error{fmt.Errorf("%s: %w: the plugin broke (%s) instead of answering or returning an error", what, err, r)}
		}
	}
	return nil
}

// ctx is the documented step context of a request.
var ctx = &pdk.StepContext{JobID: "job-1", JobName: "contract", PipelineID: "p-1", PipelineRunID: "run-1", Stage: "test", Step: "contract",
	Workspace: pdktest.WorkspaceGuest, Env: map[string]string{"CI": "true"}, Attempt: 1}

// event is the documented event of a notify request.
var event = &pdk.NotifyEvent{Type: "pipeline.failed", PipelineID: "p-1", PipelineRunID: "run-1", Status: "failed",
	URL: "http://127.0.0.1:9/runs/run-1", Labels: map[string]string{"pipeline": "web", "run": "7", "job": "test", "step": "unit", "cause": "exit status 1"}}

// request is the documented request of kind's function fn, and what its
// answer decodes into.
func request(kind pluginv1.Kind, fn string) (req, resp any) {
	switch kind {
	case pluginv1.Kind_KIND_CI, pluginv1.Kind_KIND_SECURITY:
		return pdk.StepRequest{Context: ctx, Params: pdk.Params{}}, &pdk.StepResponse{}
	case pluginv1.Kind_KIND_CD:
		return pdk.DeployRequest{Context: ctx, Environment: "contract", Version: "0.0.0", Params: pdk.Params{}}, &pdk.StepResponse{}
	case pluginv1.Kind_KIND_NOTIFY:
		if fn == "send_template" {
			return pdk.SendTemplateRequest{Template: "# {{.Pipeline}} {{.Status}}\n{{.Job}} {{.Step}}: {{.Cause}} {{.URL}}", Inline: true,
				Data: pdk.Params{}, Event: event}, &pdk.SendResponse{}
		}
		return pdk.SendRequest{Title: "web failed", Body: "test unit: exit status 1", Severity: pdk.SeverityHigh, Event: event,
			Metadata: map[string]string{"rule": "contract"}}, &pdk.SendResponse{}
	case pluginv1.Kind_KIND_STORAGE:
		switch fn {
		case "save":
			return pdk.SaveRequest{Key: "contract/object.txt", Content: []byte("contract"), ContentType: "text/plain"}, &pdk.SaveResponse{}
		case "load":
			return pdk.LoadRequest{Key: "contract/object.txt"}, &pdk.LoadResponse{}
		case "delete":
			return pdk.DeleteRequest{Key: "contract/object.txt"}, &pdk.DeleteResponse{}
		case "list":
			return pdk.ListRequest{Prefix: "contract/", PageSize: 10}, &pdk.ListResponse{}
		}
	}
	return pdk.ExecuteRequest{Context: ctx, Action: "", Params: pdk.Params{}}, &pdk.ExecuteResponse{}
}

// status is the answer's status, and whether the contract knows it.
func status(resp any) (string, bool) {
	b, _ := json.Marshal(resp)
	var s struct {
		Status string `json:"status"`
	}
	_ = json.Unmarshal(b, &s)
	if s.Status == "" {
		return "", true // the zero value, omitted
	}
	_, ok := pluginv1.Status_value[s.Status]
	return s.Status, ok
}
