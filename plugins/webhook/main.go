//go:build wasip1

// Command webhook is a notify plugin that POSTs notifications to a webhook.
//
// config: url (required; its host must be granted in allowed_hosts),
// format (generic | slack | dingtalk | feishu; default generic), token
// (bearer token for generic webhooks), template.NAME (named templates for
// send_template), channel (default channel).
//
// Payloads:
//
//	generic   {"channel","title","body","severity","event","metadata"}
//	slack     {"channel","text"} (incoming-webhook compatible)
//	dingtalk  {"msgtype":"markdown","markdown":{"title","text"}}
//	feishu    {"msg_type":"text","content":{"text"}}
//
// Templates are Go text/template over the template model of server rules
// (pdk.TemplateData: {{.Pipeline}}, {{.Job}}, {{.Step}}, {{.Cause}},
// {{.URL}}…, and {{.Data}}, the request's data); a first line starting
// with "# " becomes the title. The older {{.Event.status}} spelling still
// renders, with a warning in the log.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/go-arcade/arcade/pdk"
)

var meta = pdk.Metadata{
	Name:        "webhook",
	Kind:        pdk.KindNotify,
	Version:     "1.0.0",
	Description: "JSON webhook notifications (generic, Slack, DingTalk, Feishu) with templates",
	Capabilities: &pdk.Capabilities{
		ConfigKeys: []string{"url", "format", "token", "channel", "template.NAME"},
	},
	// Declared, so that a misspelt key (chanel:) is refused at load.
	Config: []pdk.Key{
		{Name: "url", Description: "where to POST; its host must be granted"},
		{Name: "format", Default: "generic", Description: "generic, slack, dingtalk or feishu"},
		{Name: "token", Description: "bearer token (generic)"},
		{Name: "channel", Description: "default channel"},
		{Name: "template.*", Description: "named templates for send_template"},
	},
}

//go:wasmexport metadata
func metadata() int32 { return pdk.Describe(meta) }

//go:wasmexport send
func send() int32 { return pdk.Handle(runSend) }

//go:wasmexport send_template
func sendTemplate() int32 { return pdk.Handle(runSendTemplate) }

func main() {}

func runSend(r *pdk.SendRequest) (*pdk.SendResponse, error) {
	return post(r)
}

func runSendTemplate(r *pdk.SendTemplateRequest) (*pdk.SendResponse, error) {
	text := r.Template
	if !r.Inline {
		t, ok := pdk.Config("template." + r.Template)
		if !ok {
			return nil, pdk.Permanent(fmt.Errorf("webhook: no template %q (set config template.%s, or send it inline)", r.Template, r.Template))
		}
		text = t
	}
	t, warnings, err := pdk.ParseTemplate("notification", text)
	for _, w := range warnings {
		pdk.Log(pdk.LogWarn, "webhook: template "+r.Template+": "+w)
	}
	if err != nil {
		return nil, pdk.Permanent(fmt.Errorf("webhook: template: %w", err))
	}
	title, body, err := pdk.RenderNotification(t, pdk.TemplateDataOf(r.Event, r.Data))
	if err != nil {
		return nil, pdk.Permanent(fmt.Errorf("webhook: %w", err))
	}
	return post(&pdk.SendRequest{Channel: r.Channel, Title: title, Body: body, Event: r.Event})
}

func post(r *pdk.SendRequest) (*pdk.SendResponse, error) {
	url, ok := pdk.Config("url")
	if !ok || url == "" {
		return nil, pdk.Permanent(errors.New("webhook: config url is not set"))
	}
	if r.Channel == "" {
		r.Channel = pdk.ConfigOr("channel", "")
	}
	format := pdk.ConfigOr("format", "generic")
	payload, err := payloadFor(format, r)
	if err != nil {
		return nil, err
	}
	header := map[string]string{"Content-Type": "application/json", "User-Agent": "arcade-webhook/1.0"}
	if tok := pdk.ConfigOr("token", ""); tok != "" && format == "generic" {
		header["Authorization"] = "Bearer " + tok
	}
	resp, err := pdk.Fetch(pdk.Request{Method: "POST", URL: url, Header: header, Body: payload})
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	if err := resp.Err(); err != nil {
		err = fmt.Errorf("webhook: %s answered %w", hostOf(url), err)
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 408 && resp.StatusCode != 429 {
			// The receiver refused this request: sending it again cannot help.
			err = pdk.Permanent(err)
		}
		return nil, err
	}
	// DingTalk and Feishu answer 200 with an error code in the body.
	var reply struct {
		ErrCode *int   `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
		Code    *int   `json:"code"`
		Msg     string `json:"msg"`
		ID      string `json:"id"`
	}
	_ = json.Unmarshal(resp.Body, &reply)
	if reply.ErrCode != nil && *reply.ErrCode != 0 {
		return nil, fmt.Errorf("webhook: %s refused the message: %d %s", hostOf(url), *reply.ErrCode, reply.ErrMsg)
	}
	if reply.Code != nil && *reply.Code != 0 {
		return nil, fmt.Errorf("webhook: %s refused the message: %d %s", hostOf(url), *reply.Code, reply.Msg)
	}
	return &pdk.SendResponse{Status: pdk.StatusSuccess, MessageID: reply.ID,
		Messages: []pdk.Message{{Severity: pdk.SeverityInfo, Text: fmt.Sprintf("sent %s notification to %s", format, hostOf(url))}}}, nil
}

func payloadFor(format string, r *pdk.SendRequest) ([]byte, error) {
	var v any
	switch format {
	case "generic":
		v = map[string]any{"channel": r.Channel, "title": r.Title, "body": r.Body,
			"severity": r.Severity, "event": r.Event, "metadata": r.Metadata}
	case "slack":
		text := r.Body
		if r.Title != "" {
			text = "*" + r.Title + "*\n" + r.Body
		}
		m := map[string]any{"text": text}
		if r.Channel != "" {
			m["channel"] = r.Channel
		}
		v = m
	case "dingtalk":
		title := r.Title
		if title == "" {
			title = "Arcade"
		}
		v = map[string]any{"msgtype": "markdown", "markdown": map[string]any{"title": title, "text": "### " + title + "\n\n" + r.Body}}
	case "feishu":
		text := r.Body
		if r.Title != "" {
			text = r.Title + "\n" + r.Body
		}
		v = map[string]any{"msg_type": "text", "content": map[string]any{"text": text}}
	default:
		return nil, fmt.Errorf("webhook: unknown format %q (want generic, slack, dingtalk or feishu)", format)
	}
	return json.Marshal(v)
}

func hostOf(url string) string {
	s := url
	if _, rest, ok := strings.Cut(s, "://"); ok {
		s = rest
	}
	s, _, _ = strings.Cut(s, "/")
	return s
}
