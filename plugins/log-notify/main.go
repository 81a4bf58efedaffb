//go:build wasip1

// Command log-notify is a notify plugin that writes notifications to the
// log (the kernel's log functions, at a level following the severity) and,
// with config stdout=true, one JSON line per notification to stdout.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/go-arcade/arcade/pdk"
)

var meta = pdk.Metadata{
	Name:        "log-notify",
	Kind:        pdk.KindNotify,
	Version:     "1.0.0",
	Description: "notifications written to the log",
}

//go:wasmexport metadata
func metadata() int32 { return pdk.Describe(meta) }

//go:wasmexport send
func send() int32 { return pdk.Handle(runSend) }

//go:wasmexport send_template
func sendTemplate() int32 {
	return pdk.Handle(func(r *pdk.SendTemplateRequest) (*pdk.SendResponse, error) {
		text := r.Template
		if !r.Inline {
			t, ok := pdk.Config("template." + r.Template)
			if !ok {
				return nil, pdk.Permanent(fmt.Errorf("log-notify: no template %q", r.Template))
			}
			text = t
		}
		// The template model of server rules (pdk.TemplateData).
		t, warnings, err := pdk.ParseTemplate("notification", text)
		for _, w := range warnings {
			pdk.Log(pdk.LogWarn, "log-notify: template "+r.Template+": "+w)
		}
		if err != nil {
			return nil, pdk.Permanent(fmt.Errorf("log-notify: template: %w", err))
		}
		title, body, err := pdk.RenderNotification(t, pdk.TemplateDataOf(r.Event, r.Data))
		if err != nil {
			return nil, pdk.Permanent(fmt.Errorf("log-notify: %w", err))
		}
		return runSend(&pdk.SendRequest{Channel: r.Channel, Title: title, Body: body, Event: r.Event})
	})
}

func main() {}

func runSend(r *pdk.SendRequest) (*pdk.SendResponse, error) {
	line := r.Body
	if r.Title != "" {
		line = r.Title + ": " + r.Body
	}
	if r.Channel != "" {
		line = "[" + r.Channel + "] " + line
	}
	switch r.Severity {
	case pdk.SeverityCritical, pdk.SeverityHigh:
		pdk.Log(pdk.LogError, line)
	case pdk.SeverityMedium:
		pdk.Log(pdk.LogWarn, line)
	default:
		pdk.Log(pdk.LogInfo, line)
	}
	if pdk.ConfigOr("stdout", "false") == "true" {
		b, _ := json.Marshal(r)
		fmt.Fprintln(os.Stdout, string(b))
	}
	return &pdk.SendResponse{Status: pdk.StatusSuccess}, nil
}
