// Package host is Arcade's WebAssembly plugin host.
//
// Plugins are Extism modules (the Extism kernel ABI, so any Extism PDK works)
// that speak the arcade.plugin.v1 contract as protojson. A Manager compiles
// each plugin once per version (through wazero's on-disk compilation cache),
// keeps a bounded pool of instances per plugin, and calls them under the
// grants of conf.d/plugins.yaml: no file, no network host, bounded memory and
// a timeout on every call. Nothing is granted by default.
//
// Typical use:
//
//	manager := host.NewManager(logger)
//	if err := manager.LoadPluginsFromConfig("./conf.d/plugins.yaml"); err != nil { … }
//	if err := manager.Init(ctx); err != nil { … } // some plugins failed to load
//	if err := manager.StartAutoWatch([]string{"./plugins"}, "./conf.d/plugins.yaml"); err != nil { … }
//	defer manager.StopAutoWatch()
//	notify, err := manager.GetNotifyPlugin("slack")
//	if err == nil {
//		resp, err := notify.Send(ctx, message)
//	}
//
// Hot reload swaps a plugin's version atomically: calls in flight finish on
// the old version, new calls go to the new one, and a replacement that fails
// to load is refused while the old version keeps serving. Every change is
// raised as an Event to the subscribers registered with Manager.Subscribe.
//
// A Runner serves agents' job steps without a Manager: it loads a module it
// is handed (bytes and a Spec, the job workspace among the path grants),
// calls it and closes it, sharing only the compilation cache between steps.
// Plugin.Module hands out a serving version's bytes and grants, for agents
// to fetch.
//
// Plugin log lines (the kernel's log_* functions) and the guest's stdout and
// stderr go to the logger carried by the call's context (WithLogger), so a
// job step's plugin logs can land in that job's log; without one they go to
// the Manager's logger.
//
// The host adds no host functions of its own: plugins import only the Extism
// kernel (extism:host/env) and WASI, so a plugin that runs here runs in any
// Extism runtime. Plugin variables (var_get/var_set) belong to one instance
// and do not survive a reload; a plugin must not rely on them across calls.
//
// Errors are *Error values whose Reason answers errors.Is (ErrTimeout,
// ErrOutOfMemory, ErrPathNotGranted…) and whose message is short enough to
// show to users: "plugin slack timed out after 10s".
package host
