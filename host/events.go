package host

import (
	"sync"
	"time"
)

// EventType names a change in a plugin's life.
type EventType string

// Event types. The server publishes them on its event stream.
const (
	EventLoaded   EventType = "loaded"
	EventUnloaded EventType = "unloaded"
	EventReloaded EventType = "reloaded"
	// EventFailed: a load or reload was refused; an older version, if any,
	// keeps serving.
	EventFailed EventType = "failed"
	// EventCallFailed: a call failed on a fail-open plugin and was skipped.
	EventCallFailed EventType = "call_failed"
	// EventConfigRejected: an edit of the plugins configuration (Path) does
	// not parse, names an unknown key, or would unload a plugin depended on
	// (WithDependencies) (Err); the running configuration stays.
	EventConfigRejected EventType = "config_rejected"
)

// Event is a change in a plugin's life.
type Event struct {
	Type   EventType
	Plugin string
	Kind   string // short kind name: "notify"
	// Version is the version now serving (for unloaded: the one removed).
	Version string
	// Previous is the version replaced by a reload.
	Previous string
	Path     string
	SHA256   string
	Function string // for call_failed
	Err      error  // for failed and call_failed
	Time     time.Time
}

// subscribers fans events out to callbacks.
type subscribers struct {
	mu   sync.RWMutex
	next int
	fns  map[int]func(Event)
}

// Subscribe registers fn for every later event and returns a function that
// removes it. fn is called synchronously from the goroutine that made the
// change (load events come one at a time, call_failed events may come from
// several calls at once): it must return quickly, handing the event to a
// channel or a queue, and must not call Subscribe.
func (m *Manager) Subscribe(fn func(Event)) (unsubscribe func()) {
	s := &m.subs
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fns == nil {
		s.fns = map[int]func(Event){}
	}
	id := s.next
	s.next++
	s.fns[id] = fn
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.fns, id)
	}
}

func (m *Manager) emit(e Event) {
	e.Time = time.Now()
	attrs := []any{"plugin", e.Plugin, "event", string(e.Type)}
	if e.Version != "" {
		attrs = append(attrs, "version", e.Version)
	}
	if e.Previous != "" {
		attrs = append(attrs, "previous", e.Previous)
	}
	// The one log line of each event (subscribers do not log them again).
	if e.Err != nil {
		attrs = append(attrs, "err", e.Err)
		m.logger.Warn("plugin "+string(e.Type), attrs...)
	} else {
		m.logger.Info("plugin "+string(e.Type), attrs...)
	}
	m.subs.mu.RLock()
	defer m.subs.mu.RUnlock()
	for _, fn := range m.subs.fns {
		fn(e)
	}
}
