// Package notify routes server events to notify plugins: rules pick events
// by type (and pipeline), a text/template renders the message, and a
// bounded queue with its own workers delivers it, retrying with
// exponential backoff and jitter. Delivery never blocks the publisher: a
// full queue drops the notification with a logged error and an event.
// Every attempt is logged and published as an event.
package notify

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/go-arcade/arcade/core/events"
	"github.com/go-arcade/arcade/pdk"
)

// Rule sends the events it selects through a notify plugin.
type Rule struct {
	// Name identifies the rule in logs and events.
	Name string
	// On are event names (core/events: "pipeline.failed"); "job.*"
	// selects a whole family. Validate rewrites older spellings
	// (job_failed) to the names.
	On []string
	// Plugin is the notify plugin that sends.
	Plugin string
	// Template is a text/template over Data (the template model shared
	// with notify plugins); its first line, when it starts with "# ",
	// becomes the title. Empty: DefaultTemplate.
	Template string
	// Pipelines, when set, keep only events of these pipelines (by name).
	Pipelines []string
	// Channel is handed to the plugin; empty means its default.
	Channel string
}

// DefaultTemplate renders a rule without a template.
const DefaultTemplate = `{{.Type}}{{if .Pipeline}} {{.Pipeline}}{{if .Run}} run #{{.Run}}{{end}}{{end}}{{if .Job}} job {{.Job}}{{end}}{{if .Step}} step {{.Step}}{{end}}{{if .Agent}} agent {{.Agent}}{{end}}{{if .Plugin}} plugin {{.Plugin}}{{end}}: {{.Status}}{{if .Cause}}: {{.Cause}}{{else if .Message}}: {{.Message}}{{end}}{{if .URL}} {{.URL}}{{end}}`

// Config is the notification rules and how they are delivered.
type Config struct {
	Rules []Rule
	// Attempts per notification (default 3).
	Attempts int
	// Backoff is the wait after the first failed attempt, doubled after
	// each further one (default 1s), up to MaxBackoff (default 30s); the
	// waits are jittered.
	Backoff, MaxBackoff time.Duration
	// Timeout bounds each attempt (default 10s).
	Timeout time.Duration
	// QueueSize bounds the notifications waiting (default 256); Workers
	// deliver them (default 2).
	QueueSize, Workers int
	// DrainTimeout bounds how long a stopping server keeps delivering the
	// notifications already queued (default 10s).
	DrainTimeout time.Duration

	// PublicURL is the dashboard's address (server setting public_url):
	// the URL of the template model links under it. Empty: no links.
	PublicURL string

	// Warnings are set by Validate: older spellings of event names and
	// template fields that it rewrote, for the server to log.
	Warnings []string
}

// Validate checks the rules (known event types, a plugin, a template that
// parses) and fills defaults.
func (c *Config) Validate() error {
	names := map[string]bool{}
	for i, r := range c.Rules {
		field := fmt.Sprintf("notify[%d]", i)
		if r.Name != "" {
			field = fmt.Sprintf("notify[%d] (%s)", i, r.Name)
		}
		if r.Name == "" {
			return fmt.Errorf("%s.name: must be set", field)
		}
		if names[r.Name] {
			return fmt.Errorf("%s.name: another rule is named %q", field, r.Name)
		}
		names[r.Name] = true
		if strings.TrimSpace(r.Plugin) == "" {
			return fmt.Errorf("%s.plugin: must name a notify plugin", field)
		}
		if len(r.On) == 0 {
			return fmt.Errorf("%s.on: must list event names (%s)", field, strings.Join(selectable(), ", "))
		}
		on := make([]string, len(r.On))
		for j, t := range r.On {
			p, alias, err := events.Parse(t)
			if err != nil {
				return fmt.Errorf("%s.on[%d]: unknown event name %q (want one of %s, or FAMILY.*)", field, j, t, strings.Join(selectable(), ", "))
			}
			if strings.HasPrefix(p.String(), "notification.") {
				return fmt.Errorf("%s.on[%d]: %s: notifications about notifications are not sent (see arcade events --type notification.*)", field, j, t)
			}
			if alias {
				c.Warnings = append(c.Warnings, fmt.Sprintf("%s.on[%d]: %q is an older spelling of %q", field, j, t, p))
			}
			on[j] = p.String()
		}
		c.Rules[i].On = on
		_, warnings, err := parseTemplate(r)
		if err != nil {
			return fmt.Errorf("%s.template: %w", field, err)
		}
		for _, w := range warnings {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s.template: %s", field, w))
		}
	}
	for name, d := range map[string]time.Duration{"backoff": c.Backoff, "max_backoff": c.MaxBackoff, "timeout": c.Timeout} {
		if d < 0 {
			return fmt.Errorf("notify_delivery.%s: must not be negative, got %s", name, d)
		}
	}
	if c.Attempts < 0 || c.QueueSize < 0 || c.Workers < 0 {
		return errors.New("notify_delivery: attempts, queue_size and workers must not be negative")
	}
	if c.Attempts == 0 {
		c.Attempts = 3
	}
	if c.Backoff == 0 {
		c.Backoff = time.Second
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 30 * time.Second
	}
	c.MaxBackoff = max(c.MaxBackoff, c.Backoff)
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.QueueSize == 0 {
		c.QueueSize = 256
	}
	if c.Workers == 0 {
		c.Workers = 2
	}
	if c.DrainTimeout < 0 {
		return errors.New("notify_delivery.drain_timeout: must not be negative")
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 10 * time.Second
	}
	return nil
}

// selectable lists the event names rules may select.
func selectable() []string {
	var out []string
	for _, d := range events.Defs() {
		if !strings.HasPrefix(string(d.Name), "notification.") {
			out = append(out, string(d.Name))
		}
	}
	return out
}

func parseTemplate(r Rule) (*template.Template, []string, error) {
	text := r.Template
	if text == "" {
		text = DefaultTemplate
	}
	return pdk.ParseTemplate(r.Name, text)
}

// rule is a validated rule.
type rule struct {
	Rule
	tmpl *template.Template
}

// selects reports whether the rule wants an event of type typ about
// pipeline; an empty pipeline of an event that belongs to a run (a job's)
// is resolved later, and passes here.
func (r *rule) selects(typ, pipeline string, inRun bool) bool {
	ok := slices.ContainsFunc(r.On, func(on string) bool {
		p, _, err := events.Parse(on)
		return err == nil && p.MatchName(events.Name(typ))
	})
	if !ok {
		return false
	}
	return pipeline == "" && inRun || r.forPipeline(pipeline)
}

// forPipeline reports whether the rule's pipelines filter keeps pipeline.
func (r *rule) forPipeline(pipeline string) bool {
	return len(r.Pipelines) == 0 || slices.Contains(r.Pipelines, pipeline)
}

// render writes the rule's message for d: title (from a first line "# …")
// and body.
func (r *rule) render(d Data) (title, body string, err error) {
	title, body, err = pdk.RenderNotification(r.tmpl, d)
	if err != nil {
		return "", "", fmt.Errorf("rule %s: %w", r.Name, err)
	}
	return title, body, nil
}
