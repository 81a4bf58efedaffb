package notify

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/core/events"
	"github.com/go-arcade/arcade/host"
)

// TestContractDoc holds docs/plugin-contracts.md to the code: every kind's
// functions, every template variable of rules, every field of the notify
// request and event, every event name rules can select and the severities.
func TestContractDoc(t *testing.T) {
	b, err := os.ReadFile("../../docs/plugin-contracts.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	mustSay := func(what, s string) {
		t.Helper()
		if !strings.Contains(doc, s) {
			t.Errorf("docs/plugin-contracts.md does not document %s: %s", what, s)
		}
	}
	for k := range pluginv1.Kind_name {
		kind := pluginv1.Kind(k)
		if kind == pluginv1.Kind_KIND_UNSPECIFIED {
			continue
		}
		fns := host.RequiredFunctions(kind)
		quoted := make([]string, len(fns))
		for i, f := range fns {
			quoted[i] = "`" + f + "`"
		}
		mustSay("the functions of "+host.KindName(kind), "| "+host.KindName(kind)+" | "+strings.Join(quoted, ", ")+" |")
	}
	dt := reflect.TypeOf(Data{})
	for i := range dt.NumField() {
		mustSay("a template variable", "{{."+dt.Field(i).Name+"}}")
	}
	for _, msg := range [][]string{fieldNames(&pluginv1.SendRequest{}), fieldNames(&pluginv1.NotifyEvent{})} {
		for _, f := range msg {
			mustSay("a notify request field", "`"+f+"`")
		}
	}
	types := map[string]bool{}
	for _, d := range events.Defs() {
		if !strings.HasPrefix(string(d.Name), "notification.") {
			types[string(d.Name)] = true
		}
	}
	for typ := range types {
		mustSay("an event name", "`"+typ+"`")
		// The rule the page states, applied to the name, is the code's.
		documented := pluginv1.Severity_SEVERITY_INFO
		switch {
		case strings.HasSuffix(typ, ".failed"), strings.HasSuffix(typ, ".timeout"), typ == "agent.offline":
			documented = pluginv1.Severity_SEVERITY_HIGH
		case strings.HasSuffix(typ, ".cancelled"):
			documented = pluginv1.Severity_SEVERITY_MEDIUM
		}
		if got := severity(typ); got != documented {
			t.Errorf("%s: severity %v, the page says %v", typ, got, documented)
		}
	}
	mustSay("the severities", "`SEVERITY_HIGH` for `*.failed`, `*.timeout` and `agent.offline`; `SEVERITY_MEDIUM` for `*.cancelled`; `SEVERITY_INFO` otherwise")
}

// fieldNames are the JSON names of a message's fields.
func fieldNames(m proto.Message) []string {
	fields := m.ProtoReflect().Descriptor().Fields()
	out := make([]string, fields.Len())
	for i := range fields.Len() {
		out[i] = fields.Get(i).JSONName()
	}
	return out
}
