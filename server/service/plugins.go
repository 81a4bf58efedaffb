package service

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/host"
)

// PluginServer implements pluginv1.PluginServiceServer over the server's
// plugin host.
type PluginServer struct {
	pluginv1.UnimplementedPluginServiceServer
	host *host.Manager
}

// NewPluginServer exposes the plugins of m.
func NewPluginServer(m *host.Manager) *PluginServer { return &PluginServer{host: m} }

// ListPlugins implements PluginService.ListPlugins.
func (ps *PluginServer) ListPlugins(_ context.Context, req *pluginv1.ListPluginsRequest) (*pluginv1.ListPluginsResponse, error) {
	resp := &pluginv1.ListPluginsResponse{}
	for _, info := range ps.host.List() {
		if req.GetKind() != pluginv1.Kind_KIND_UNSPECIFIED && info.GetMetadata().GetKind() != req.GetKind() {
			continue
		}
		resp.Plugins = append(resp.Plugins, info)
	}
	return resp, nil
}

func (ps *PluginServer) info(name string) (*pluginv1.PluginInfo, error) {
	for _, info := range ps.host.List() {
		if info.GetName() == name {
			return info, nil
		}
	}
	return nil, grpcstatus.Errorf(codes.NotFound, "plugin %q not found", name)
}

// GetPlugin implements PluginService.GetPlugin.
func (ps *PluginServer) GetPlugin(_ context.Context, req *pluginv1.GetPluginRequest) (*pluginv1.GetPluginResponse, error) {
	if err := requireID("name", req.GetName()); err != nil {
		return nil, err
	}
	info, err := ps.info(req.GetName())
	if err != nil {
		return nil, err
	}
	return &pluginv1.GetPluginResponse{Plugin: info}, nil
}

// CallPlugin implements PluginService.CallPlugin.
func (ps *PluginServer) CallPlugin(ctx context.Context, req *pluginv1.CallPluginRequest) (*pluginv1.CallPluginResponse, error) {
	if err := requireID("name", req.GetName()); err != nil {
		return nil, err
	}
	if err := requireID("function", req.GetFunction()); err != nil {
		return nil, err
	}
	// Right after a start the plugin may still compile: the call waits for
	// it (within the caller's deadline).
	if err := ps.host.WaitCompiled(ctx, req.GetName()); err != nil {
		return nil, pluginError(err)
	}
	p, err := ps.host.Get(req.GetName())
	if err != nil {
		return nil, pluginError(err)
	}
	start := time.Now()
	out, err := p.Call(ctx, req.GetFunction(), []byte(req.GetInputJson()))
	if err != nil {
		return nil, pluginError(err)
	}
	return &pluginv1.CallPluginResponse{OutputJson: string(out), DurationMs: time.Since(start).Milliseconds()}, nil
}

// ReloadPlugin implements PluginService.ReloadPlugin. Reloading one plugin
// fails with its error; reloading every plugin answers every plugin's
// state, failed ones with their error (one plugin that does not load does
// not make the others' reload a failure).
func (ps *PluginServer) ReloadPlugin(ctx context.Context, req *pluginv1.ReloadPluginRequest) (*pluginv1.ReloadPluginResponse, error) {
	if err := ps.host.Reload(ctx, req.GetName()); err != nil && (req.GetName() != "" || errors.Is(err, host.ErrClosed) || ctx.Err() != nil) {
		return nil, pluginError(err)
	}
	resp := &pluginv1.ReloadPluginResponse{}
	for _, info := range ps.host.List() {
		if req.GetName() == "" || info.GetName() == req.GetName() {
			resp.Plugins = append(resp.Plugins, info)
		}
	}
	return resp, nil
}

// pluginError maps a host error to a gRPC status with the host's message,
// which is written for users.
func pluginError(err error) error {
	var code codes.Code
	switch {
	case errors.Is(err, host.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, host.ErrUnknownFunction):
		code = codes.InvalidArgument
	case errors.Is(err, host.ErrTimeout):
		code = codes.DeadlineExceeded
	case errors.Is(err, host.ErrCanceled):
		code = codes.Canceled
	case errors.Is(err, host.ErrOutOfMemory):
		code = codes.ResourceExhausted
	case errors.Is(err, host.ErrPathNotGranted), errors.Is(err, host.ErrHostNotGranted):
		code = codes.PermissionDenied
	case errors.Is(err, host.ErrNotLoaded), errors.Is(err, host.ErrClosed):
		code = codes.Unavailable
	case errors.Is(err, host.ErrPluginFailed), errors.Is(err, host.ErrCrashed),
		errors.Is(err, host.ErrStackOverflow), errors.Is(err, host.ErrBadOutput):
		code = codes.Aborted
	default:
		var he *host.Error
		if errors.As(err, &he) {
			code = codes.FailedPrecondition // a refused load
		} else {
			code = codes.Internal
		}
	}
	return grpcstatus.Error(code, err.Error())
}
