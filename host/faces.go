package host

import (
	"context"
	"log/slog"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

var (
	marshalOpts   = protojson.MarshalOptions{}
	unmarshalOpts = protojson.UnmarshalOptions{DiscardUnknown: true}
)

// face is what every typed face shares: a plugin handle of a given kind.
type face struct {
	p *Plugin
}

// Plugin returns the underlying plugin handle.
func (f face) Plugin() *Plugin { return f.p }

// Name returns the plugin's name.
func (f face) Name() string { return f.p.name }

// statusSetter is every response message: they all carry a status and
// messages, which a fail-open skip fills in.
type statusSetter interface {
	proto.Message
	GetStatus() pluginv1.Status
}

// invoke marshals in, calls fn and unmarshals into out. On a fail-open
// plugin a failure is logged, raised as an event and turned into a SKIPPED
// response with a nil error.
func invoke[Out statusSetter](ctx context.Context, p *Plugin, fn string, in proto.Message, out Out) (Out, error) {
	out, err := call(ctx, p, fn, in, out)
	if err == nil {
		return out, nil
	}
	if !p.FailOpen() {
		return out, err
	}
	callLogger(ctx, p.m.logger).Log(ctx, slog.LevelWarn, "plugin failed; carrying on (fail open)",
		"plugin", p.name, "function", fn, "err", err)
	p.m.emit(Event{Type: EventCallFailed, Plugin: p.name, Kind: KindName(p.Kind()), Function: fn, Err: err})
	proto.Reset(out)
	skip(out, err.Error())
	return out, nil
}

// call calls fn with in and decodes its answer into out, with no failure
// policy.
func call[Out proto.Message](ctx context.Context, p *Plugin, fn string, in proto.Message, out Out) (Out, error) {
	data, err := marshalOpts.Marshal(in)
	if err != nil {
		return out, &Error{Plugin: p.name, Function: fn, Reason: ErrBadOutput, Detail: "cannot encode input: " + err.Error(), Err: err}
	}
	raw, err := p.Call(ctx, fn, data)
	if err != nil {
		return out, err
	}
	if uerr := unmarshalOpts.Unmarshal(raw, out); uerr != nil {
		return out, &Error{Plugin: p.name, Function: fn, Reason: ErrBadOutput, Detail: uerr.Error(), Err: uerr}
	}
	return out, nil
}

// skip marks a response SKIPPED with the reason as a warning message.
func skip(out proto.Message, reason string) {
	m := out.ProtoReflect()
	fields := m.Descriptor().Fields()
	if f := fields.ByName("status"); f != nil {
		m.Set(f, protoEnum(pluginv1.Status_STATUS_SKIPPED))
	}
	if f := fields.ByName("messages"); f != nil {
		msg := &pluginv1.Message{Severity: pluginv1.Severity_SEVERITY_MEDIUM, Text: reason}
		l := m.Mutable(f).List()
		l.Append(protoMessage(msg))
	}
}

// kindFace checks that a plugin serves the given kind.
func (m *Manager) kindFace(name string, k pluginv1.Kind) (face, error) {
	p, err := m.Get(name)
	if err != nil {
		return face{}, err
	}
	if got := p.Kind(); got != k {
		return face{}, &Error{Plugin: name, Reason: ErrWrongKind,
			Detail: "it is a " + KindName(got) + " plugin, not " + KindName(k)}
	}
	return face{p: p}, nil
}

// CIPlugin is the face of a ci plugin.
type CIPlugin struct{ face }

// GetCIPlugin returns the ci plugin name.
func (m *Manager) GetCIPlugin(name string) (*CIPlugin, error) {
	f, err := m.kindFace(name, pluginv1.Kind_KIND_CI)
	if err != nil {
		return nil, err
	}
	return &CIPlugin{f}, nil
}

// Build runs the plugin's build.
func (c *CIPlugin) Build(ctx context.Context, in *pluginv1.StepRequest) (*pluginv1.StepResponse, error) {
	return invoke(ctx, c.p, "build", in, &pluginv1.StepResponse{})
}

// Test runs the plugin's tests.
func (c *CIPlugin) Test(ctx context.Context, in *pluginv1.StepRequest) (*pluginv1.StepResponse, error) {
	return invoke(ctx, c.p, "test", in, &pluginv1.StepResponse{})
}

// Lint runs the plugin's lint.
func (c *CIPlugin) Lint(ctx context.Context, in *pluginv1.StepRequest) (*pluginv1.StepResponse, error) {
	return invoke(ctx, c.p, "lint", in, &pluginv1.StepResponse{})
}

// CDPlugin is the face of a cd plugin.
type CDPlugin struct{ face }

// GetCDPlugin returns the cd plugin name.
func (m *Manager) GetCDPlugin(name string) (*CDPlugin, error) {
	f, err := m.kindFace(name, pluginv1.Kind_KIND_CD)
	if err != nil {
		return nil, err
	}
	return &CDPlugin{f}, nil
}

// Deploy deploys.
func (c *CDPlugin) Deploy(ctx context.Context, in *pluginv1.DeployRequest) (*pluginv1.StepResponse, error) {
	return invoke(ctx, c.p, "deploy", in, &pluginv1.StepResponse{})
}

// Rollback rolls a deployment back.
func (c *CDPlugin) Rollback(ctx context.Context, in *pluginv1.DeployRequest) (*pluginv1.StepResponse, error) {
	return invoke(ctx, c.p, "rollback", in, &pluginv1.StepResponse{})
}

// SecurityPlugin is the face of a security plugin.
type SecurityPlugin struct{ face }

// GetSecurityPlugin returns the security plugin name.
func (m *Manager) GetSecurityPlugin(name string) (*SecurityPlugin, error) {
	f, err := m.kindFace(name, pluginv1.Kind_KIND_SECURITY)
	if err != nil {
		return nil, err
	}
	return &SecurityPlugin{f}, nil
}

// Scan scans.
func (s *SecurityPlugin) Scan(ctx context.Context, in *pluginv1.StepRequest) (*pluginv1.StepResponse, error) {
	return invoke(ctx, s.p, "scan", in, &pluginv1.StepResponse{})
}

// Audit audits.
func (s *SecurityPlugin) Audit(ctx context.Context, in *pluginv1.StepRequest) (*pluginv1.StepResponse, error) {
	return invoke(ctx, s.p, "audit", in, &pluginv1.StepResponse{})
}

// NotifyPlugin is the face of a notify plugin.
type NotifyPlugin struct{ face }

// GetNotifyPlugin returns the notify plugin name.
func (m *Manager) GetNotifyPlugin(name string) (*NotifyPlugin, error) {
	f, err := m.kindFace(name, pluginv1.Kind_KIND_NOTIFY)
	if err != nil {
		return nil, err
	}
	return &NotifyPlugin{f}, nil
}

// Send sends a message.
func (n *NotifyPlugin) Send(ctx context.Context, in *pluginv1.SendRequest) (*pluginv1.SendResponse, error) {
	return invoke(ctx, n.p, "send", in, &pluginv1.SendResponse{})
}

// Deliver is Send without the plugin's failure policy: a failed call is
// always an error (an *Error, whose Permanent says whether retrying can
// help), never a SKIPPED answer, for callers that handle failures
// themselves (the server's notifier retries).
func (n *NotifyPlugin) Deliver(ctx context.Context, in *pluginv1.SendRequest) (*pluginv1.SendResponse, error) {
	return call(ctx, n.p, "send", in, &pluginv1.SendResponse{})
}

// SendTemplate sends a message rendered from a template.
func (n *NotifyPlugin) SendTemplate(ctx context.Context, in *pluginv1.SendTemplateRequest) (*pluginv1.SendResponse, error) {
	return invoke(ctx, n.p, "send_template", in, &pluginv1.SendResponse{})
}

// StoragePlugin is the face of a storage plugin.
type StoragePlugin struct{ face }

// GetStoragePlugin returns the storage plugin name.
func (m *Manager) GetStoragePlugin(name string) (*StoragePlugin, error) {
	f, err := m.kindFace(name, pluginv1.Kind_KIND_STORAGE)
	if err != nil {
		return nil, err
	}
	return &StoragePlugin{f}, nil
}

// Save stores an object.
func (s *StoragePlugin) Save(ctx context.Context, in *pluginv1.SaveRequest) (*pluginv1.SaveResponse, error) {
	return invoke(ctx, s.p, "save", in, &pluginv1.SaveResponse{})
}

// Load reads an object.
func (s *StoragePlugin) Load(ctx context.Context, in *pluginv1.LoadRequest) (*pluginv1.LoadResponse, error) {
	return invoke(ctx, s.p, "load", in, &pluginv1.LoadResponse{})
}

// Delete removes an object.
func (s *StoragePlugin) Delete(ctx context.Context, in *pluginv1.DeleteRequest) (*pluginv1.DeleteResponse, error) {
	return invoke(ctx, s.p, "delete", in, &pluginv1.DeleteResponse{})
}

// List lists objects.
func (s *StoragePlugin) List(ctx context.Context, in *pluginv1.ListRequest) (*pluginv1.ListResponse, error) {
	return invoke(ctx, s.p, "list", in, &pluginv1.ListResponse{})
}

// CustomPlugin is the face of a custom plugin.
type CustomPlugin struct{ face }

// GetCustomPlugin returns the custom plugin name.
func (m *Manager) GetCustomPlugin(name string) (*CustomPlugin, error) {
	f, err := m.kindFace(name, pluginv1.Kind_KIND_CUSTOM)
	if err != nil {
		return nil, err
	}
	return &CustomPlugin{f}, nil
}

// Execute runs a custom action.
func (c *CustomPlugin) Execute(ctx context.Context, in *pluginv1.ExecuteRequest) (*pluginv1.ExecuteResponse, error) {
	return invoke(ctx, c.p, "execute", in, &pluginv1.ExecuteResponse{})
}

func protoEnum(e pluginv1.Status) protoreflect.Value {
	return protoreflect.ValueOfEnum(e.Number())
}

func protoMessage(m proto.Message) protoreflect.Value {
	return protoreflect.ValueOfMessage(m.ProtoReflect())
}
