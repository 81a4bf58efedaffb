package plugininput_test

import (
	"testing"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/core/plugininput"
)

func TestCheck(t *testing.T) {
	declared := []*pluginv1.PluginInput{
		{Name: "channel"}, {Name: "url", Required: true}, {Name: "retries", Type: "number"},
		{Name: "dry_run", Type: "bool"}, {Name: "template.*"},
	}
	for _, c := range []struct {
		given map[string]string
		want  string
	}{
		{map[string]string{"url": "x", "channel": "#a", "template.alert": "t", "retries": "3", "dry_run": "true"}, ""},
		{map[string]string{"url": "x", "chanel": "#a"}, "chanel: unknown config; did you mean channel?"},
		{map[string]string{"url": "x", "colour": "red"}, "colour: unknown config; declared: channel, url, retries, dry_run, template.*"},
		{map[string]string{"channel": "#a"}, "url: missing required config"},
		{map[string]string{"url": "x", "retries": "many", "dry_run": "yes"}, `dry_run: config wants a bool: "yes" is not true or false; retries: config wants a number: "many" is not a number`},
		{map[string]string{"url": "x", "template.": "t"}, "template.: unknown config; did you mean template.*?"},
	} {
		if got := plugininput.Join(plugininput.Check("config", declared, c.given)); got != c.want {
			t.Errorf("%v:\n got %q\nwant %q", c.given, got, c.want)
		}
	}
	if errs := plugininput.Check("param", nil, map[string]string{"anything": "x"}); errs != nil {
		t.Errorf("nothing declared: %v", errs)
	}
}

func TestNearest(t *testing.T) {
	names := []string{"notify", "listen", "db", "api_tokens"}
	for s, want := range map[string]string{"notfy": "notify", "lsiten": "listen", "dbx": "", "api_token": "api_tokens", "zzz": ""} {
		if got := plugininput.Nearest(s, names); got != want {
			t.Errorf("Nearest(%q) = %q, want %q", s, got, want)
		}
	}
}
