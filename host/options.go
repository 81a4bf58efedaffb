package host

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// Option configures a Manager.
type Option func(*options)

type options struct {
	cacheDir  string // "" means the user cache dir; "-" means in memory
	debounce  time.Duration
	workers   int
	poolWait  bool
	contracts []string
	// observeCall, when set, sees every finished call (WithCallObserver).
	observeCall func(CallRecord)
	// secrets resolves the stored secrets plugins.yaml names (WithSecrets).
	secrets SecretResolver
	// deps are the plugins the manager's user depends on (WithDependencies).
	deps []Dependency
}

// SecretResolver returns the values of secrets by name, or an error naming
// those it cannot find.
type SecretResolver func(ctx context.Context, names []string) (map[string]string, error)

// WithSecrets lets plugins.yaml take config values from stored secrets
// ("secrets: {KEY: SECRET_NAME}"), resolved by r at each load.
func WithSecrets(r SecretResolver) Option {
	return func(o *options) { o.secrets = r }
}

func defaultOptions() options {
	o := options{debounce: 250 * time.Millisecond, workers: runtime.GOMAXPROCS(0)}
	if dir, err := os.UserCacheDir(); err == nil {
		o.cacheDir = filepath.Join(dir, "arcade", "wazero")
	} else {
		o.cacheDir = "-"
	}
	return o
}

// WithCacheDir keeps wazero's compilation cache in dir, so that a restart
// does not recompile what it compiled before. The default is
// $XDG_CACHE_HOME/arcade/wazero; cache_dir in plugins.yaml overrides it. An
// empty dir keeps the cache in memory only.
func WithCacheDir(dir string) Option {
	return func(o *options) {
		if dir == "" {
			dir = "-"
		}
		o.cacheDir = dir
	}
}

// WithDebounce sets how long the watcher waits for a burst of file events
// to settle before it loads (default 250 ms).
func WithDebounce(d time.Duration) Option {
	return func(o *options) { o.debounce = d }
}

// WithCompilationWorkers sets how many goroutines compile one module
// (default GOMAXPROCS).
func WithCompilationWorkers(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.workers = n
		}
	}
}
