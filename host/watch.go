package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watcher turns file events in the plugin folders and on plugins.yaml into
// loads, reloads and unloads. Bursts of events on one file are debounced;
// work runs on one goroutine, off the call path.
type watcher struct {
	fs         *fsnotify.Watcher
	dirs       []string
	configPath string
	debounce   time.Duration

	mu sync.Mutex
	// files are the configured plugin files, watched wherever they are;
	// fileDirs are the extra folders watched for them.
	files    map[string]bool
	fileDirs map[string]bool
	timers   map[string]*time.Timer
	queue    chan string
	// loading holds the files being loaded: true while a load runs, false
	// when another change came meanwhile.
	loading map[string]bool
	ctx     context.Context
	cancel  context.CancelFunc
	done    sync.WaitGroup
}

// configKey marks the configuration file in the work queue.
const configKey = "\x00config"

// StartAutoWatch watches dirs for .wasm files and configPath (may be empty)
// for changes: a new file loads, a removed one unloads, a replaced one is
// swapped in, an edited configuration is applied. The files of configured
// plugins are watched too, wherever they are. It first loads the .wasm files
// already in dirs. Missing dirs are created. Call StopAutoWatch to stop.
func (m *Manager) StartAutoWatch(dirs []string, configPath string) error {
	m.opMu.Lock()
	files := configuredFiles(m.cfg)
	m.opMu.Unlock()
	m.watchMu.Lock()
	defer m.watchMu.Unlock()
	if m.watch != nil {
		return errors.New("plugin watcher already running")
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("plugin watcher: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{fs: fsw, debounce: m.opts.debounce, timers: map[string]*time.Timer{}, fileDirs: map[string]bool{},
		queue: make(chan string, 256), ctx: ctx, cancel: cancel}
	fail := func(err error) error {
		cancel()
		_ = fsw.Close()
		return err
	}
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return fail(fmt.Errorf("plugin watcher: %w", err))
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return fail(fmt.Errorf("plugin watcher: %w", err))
		}
		if err := fsw.Add(abs); err != nil {
			return fail(fmt.Errorf("plugin watcher: watch %s: %w", abs, err))
		}
		w.dirs = append(w.dirs, abs)
	}
	if configPath != "" {
		abs, err := filepath.Abs(configPath)
		if err != nil {
			return fail(fmt.Errorf("plugin watcher: %w", err))
		}
		// Watch the folder: editors replace files by renaming over them.
		if err := fsw.Add(filepath.Dir(abs)); err != nil {
			return fail(fmt.Errorf("plugin watcher: watch %s: %w", filepath.Dir(abs), err))
		}
		w.configPath = abs
	}
	w.setFiles(files)
	m.watch = w
	w.done.Add(3)
	go w.readEvents()
	go m.work(w)
	go m.scan(w)
	m.logger.Info("plugin watcher started", "dirs", w.dirs, "config", w.configPath)
	return nil
}

// StopAutoWatch stops the watcher started by StartAutoWatch and waits for a
// load in progress to finish. Loaded plugins keep serving.
func (m *Manager) StopAutoWatch() {
	m.watchMu.Lock()
	w := m.watch
	m.watch = nil
	m.watchMu.Unlock()
	if w == nil {
		return
	}
	w.cancel()
	_ = w.fs.Close()
	w.mu.Lock()
	for _, t := range w.timers {
		t.Stop()
	}
	w.mu.Unlock()
	w.done.Wait()
	m.logger.Info("plugin watcher stopped")
}

// scan queues the .wasm files already in the watched folders.
func (m *Manager) scan(w *watcher) {
	defer w.done.Done()
	for _, d := range w.dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			m.logger.Warn("plugin watcher: cannot list folder", "dir", d, "err", err)
			continue
		}
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".wasm") {
				continue
			}
			select {
			case w.queue <- filepath.Join(d, e.Name()):
			case <-w.ctx.Done():
				return
			}
		}
	}
}

// readEvents debounces file events into the work queue.
func (w *watcher) readEvents() {
	defer w.done.Done()
	for {
		select {
		case <-w.ctx.Done():
			return
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			_ = err // surfaced by the next load attempt; fsnotify errors are overflow notices
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			if key, ok := w.keyFor(ev.Name); ok {
				w.schedule(key)
			}
		}
	}
}

// keyFor says whether a path matters: a .wasm directly in a watched folder,
// or the configuration file. A module's signature file (NAME.wasm.sig) counts
// as the module, so a signature written after its module brings a reload.
func (w *watcher) keyFor(path string) (string, bool) {
	if w.configPath != "" && path == w.configPath {
		return configKey, true
	}
	path = strings.TrimSuffix(path, SignatureExt)
	w.mu.Lock()
	configured := w.files[path]
	w.mu.Unlock()
	if configured {
		return path, true
	}
	if !strings.HasSuffix(path, ".wasm") {
		return "", false
	}
	dir := filepath.Dir(path)
	for _, d := range w.dirs {
		if d == dir {
			return path, true
		}
	}
	return "", false
}

func (w *watcher) schedule(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.timers[key]; ok {
		t.Reset(w.debounce)
		return
	}
	w.timers[key] = time.AfterFunc(w.debounce, func() {
		w.mu.Lock()
		delete(w.timers, key)
		w.mu.Unlock()
		select {
		case w.queue <- key:
		case <-w.ctx.Done():
		}
	})
}

// work applies queued changes: each file on a goroutine of its own, so
// that a plugin slow to load (or stuck in its metadata until its timeout)
// holds up no other; configuration edits one after the other, in order, on
// a goroutine of their own.
func (m *Manager) work(w *watcher) {
	defer w.done.Done()
	configs := make(chan struct{}, 1)
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		for {
			select {
			case <-w.ctx.Done():
				return
			case <-configs:
				if err := m.loadConfig(w.ctx, w.configPath); err != nil {
					m.logger.Warn("plugins config not applied", "path", w.configPath, "err", err)
				}
			}
		}
	}()
	for {
		select {
		case <-w.ctx.Done():
			return
		case key := <-w.queue:
			if key == configKey {
				select {
				case configs <- struct{}{}:
				default: // an apply is pending: it reads the file as it is then
				}
				continue
			}
			w.loadFile(m, key)
		}
	}
}

// loadFile applies a file's change on a goroutine of its own; a change that
// comes while its file is being loaded is applied once that load ends (one
// load per file at a time, the last change never lost).
func (w *watcher) loadFile(m *Manager, key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.loading == nil {
		w.loading = map[string]bool{}
	}
	if running, ok := w.loading[key]; ok {
		if running {
			w.loading[key] = false // again, when the load in progress ends
		}
		return
	}
	w.loading[key] = true
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		for {
			m.fileChanged(w.ctx, key)
			w.mu.Lock()
			if again := !w.loading[key]; again && w.ctx.Err() == nil {
				w.loading[key] = true
				w.mu.Unlock()
				continue
			}
			delete(w.loading, key)
			w.mu.Unlock()
			return
		}
	}()
}

// fileChanged loads, reloads or unloads the plugin of one .wasm file. A
// half-written file fails to load and changes nothing: the write that
// completes it brings another event.
func (m *Manager) fileChanged(ctx context.Context, path string) {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	if m.closed {
		return
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		m.mu.RLock()
		var names []string
		for n, p := range m.plugins {
			p.mu.Lock()
			// A plugin found in a folder goes with its file, loaded or not.
			found := p.source == sourceDir && sameFile(p.spec.Path, path)
			p.mu.Unlock()
			if v := p.cur.Load(); (v != nil && sameFile(v.spec.Path, path)) || found {
				names = append(names, n)
			}
		}
		m.mu.RUnlock()
		for _, n := range names {
			m.unloadLocked(n, "file removed")
		}
		return
	}
	spec, source, err := m.specForFile(path)
	if err != nil {
		var e *Error
		name := strings.TrimSuffix(filepath.Base(path), ".wasm")
		if errors.As(err, &e) {
			name = e.Plugin
		}
		m.emit(Event{Type: EventFailed, Plugin: name, Path: path, Err: err})
		return
	}
	if !spec.IsEnabled() {
		return
	}
	_ = m.applySpecLocked(ctx, spec, source, false) // failures become events
}

// setFiles makes the watcher follow the configured plugin files.
func (w *watcher) setFiles(paths []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.files = map[string]bool{}
	for _, p := range paths {
		w.files[p] = true
		dir := filepath.Dir(p)
		if w.fileDirs[dir] || slices.Contains(w.dirs, dir) {
			continue
		}
		if err := w.fs.Add(dir); err == nil {
			w.fileDirs[dir] = true
		}
	}
}

// syncWatchedFiles tells a running watcher about the configured files.
func (m *Manager) syncWatchedFiles() {
	m.watchMu.Lock()
	w := m.watch
	m.watchMu.Unlock()
	if w != nil {
		w.setFiles(configuredFiles(m.cfg))
	}
}

func configuredFiles(cfg *Config) []string {
	var out []string
	for _, s := range cfg.Plugins {
		if s.Path == "" {
			continue // pulled from a registry
		}
		if abs, err := filepath.Abs(s.Path); err == nil {
			out = append(out, abs)
		}
	}
	return out
}
