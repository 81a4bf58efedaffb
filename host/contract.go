package host

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/core/plugininput"
)

// MetadataFunction is the export every plugin has: no input, PluginMetadata
// out.
const MetadataFunction = "metadata"

// SupportedContracts are the contract versions this host speaks.
var SupportedContracts = []string{"v1"}

// kindFunctions are the functions each kind must export.
var kindFunctions = map[pluginv1.Kind][]string{
	pluginv1.Kind_KIND_CI:       {"build", "test", "lint"},
	pluginv1.Kind_KIND_CD:       {"deploy", "rollback"},
	pluginv1.Kind_KIND_SECURITY: {"scan", "audit"},
	pluginv1.Kind_KIND_NOTIFY:   {"send", "send_template"},
	pluginv1.Kind_KIND_STORAGE:  {"save", "load", "delete", "list"},
	pluginv1.Kind_KIND_CUSTOM:   {"execute"},
}

// RequiredFunctions returns the functions a plugin of kind k must export.
func RequiredFunctions(k pluginv1.Kind) []string {
	return slices.Clone(kindFunctions[k])
}

// ParseKind reads a kind as written in plugins.yaml ("notify") or as the
// enum name ("KIND_NOTIFY").
func ParseKind(s string) (pluginv1.Kind, bool) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(s, "KIND_") {
		s = "KIND_" + s
	}
	v, ok := pluginv1.Kind_value[s]
	if !ok || v == 0 {
		return pluginv1.Kind_KIND_UNSPECIFIED, false
	}
	return pluginv1.Kind(v), true
}

// KindName returns the short name of a kind, as plugins.yaml writes it.
func KindName(k pluginv1.Kind) string {
	if k == pluginv1.Kind_KIND_UNSPECIFIED {
		return "unspecified"
	}
	return strings.ToLower(strings.TrimPrefix(k.String(), "KIND_"))
}

// checkMetadata applies the load-time contract checks: contract version,
// kind, declared and exported functions, expected version.
func checkMetadata(spec *Spec, md *pluginv1.PluginMetadata, exported func(string) bool) *Error {
	name := spec.Name
	if !slices.Contains(SupportedContracts, md.GetContractVersion()) {
		return refused(name, ErrContract, "module speaks %q, host supports %s",
			md.GetContractVersion(), strings.Join(SupportedContracts, ", "))
	}
	if _, ok := kindFunctions[md.GetKind()]; !ok {
		return refused(name, ErrBadMetadata, "module declares no known kind")
	}
	if want := spec.kind(); want != pluginv1.Kind_KIND_UNSPECIFIED && want != md.GetKind() {
		return refused(name, ErrKindMismatch, "configured %s, module declares %s",
			KindName(want), KindName(md.GetKind()))
	}
	for _, fn := range kindFunctions[md.GetKind()] {
		if !slices.Contains(md.GetFunctions(), fn) {
			return refused(name, ErrMissingFunction, "%s plugin does not declare %s",
				KindName(md.GetKind()), fn)
		}
	}
	if e := checkStorageFeatures(name, md); e != nil {
		return e
	}
	for _, fn := range md.GetFunctions() {
		if !exported(fn) {
			return refused(name, ErrMissingFunction, "module declares %s but does not export it", fn)
		}
	}
	if spec.Version != "" && spec.Version != md.GetVersion() {
		return refused(name, ErrVersionMismatch, "configured %s, module declares %s",
			spec.Version, md.GetVersion())
	}
	if len(md.GetConfig()) > 0 {
		given := maps.Clone(spec.Config)
		if given == nil {
			given = map[string]string{}
		}
		for k := range spec.Secrets {
			given[k] = "" // a secret's value is not looked at
		}
		if errs := plugininput.Check("config key", md.GetConfig(), given); len(errs) > 0 {
			return refused(name, ErrBadConfig, "%s", plugininput.Join(errs))
		}
	}
	return nil
}

// ungranted lists what a plugin asks for in its metadata but was not
// granted, for a warning at load time (a request is not a grant).
// WorkspacePath is where a plugin step sees its job's workspace: the agent
// grants it with each step (read-write), so a plugin asking for it lacks
// nothing.
const WorkspacePath = "/workspace"

func ungranted(spec *Spec, md *pluginv1.PluginMetadata) []string {
	var out []string
	for _, h := range md.GetCapabilities().GetAllowedHosts() {
		if !slices.Contains(spec.Grants.AllowedHosts, h) {
			out = append(out, "host "+h)
		}
	}
	for _, p := range md.GetCapabilities().GetAllowedPaths() {
		if p.GetGuestPath() == WorkspacePath {
			continue // granted per step, with the job's workspace
		}
		if !slices.ContainsFunc(spec.Grants.AllowedPaths, func(g PathGrant) bool { return g.Guest == p.GetGuestPath() }) {
			out = append(out, fmt.Sprintf("path %s", p.GetGuestPath()))
		}
	}
	return out
}
