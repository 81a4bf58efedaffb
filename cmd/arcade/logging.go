package main

import (
	"context"
	"log/slog"
)

// nestedComponents joins nested "component" attributes into one: a logger
// tagged component=server that a package tags again component=plugins logs
// component=server.plugins, not the key twice.
type nestedComponents struct {
	slog.Handler
	component string
}

func (h nestedComponents) WithAttrs(attrs []slog.Attr) slog.Handler {
	rest := make([]slog.Attr, 0, len(attrs))
	comp := h.component
	for _, a := range attrs {
		if a.Key != "component" {
			rest = append(rest, a)
			continue
		}
		if comp != "" {
			comp += "."
		}
		comp += a.Value.String()
	}
	next := h.Handler
	if len(rest) > 0 {
		next = next.WithAttrs(rest)
	}
	return nestedComponents{Handler: next, component: comp}
}

func (h nestedComponents) WithGroup(name string) slog.Handler {
	return nestedComponents{Handler: h.Handler.WithGroup(name), component: h.component}
}

func (h nestedComponents) Handle(ctx context.Context, r slog.Record) error {
	if h.component != "" {
		r = r.Clone()
		r.AddAttrs(slog.String("component", h.component))
	}
	return h.Handler.Handle(ctx, r)
}
