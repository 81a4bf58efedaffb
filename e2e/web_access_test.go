package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	secretv1 "github.com/go-arcade/arcade/api/secret/v1"
)

// TestWebAccess drives the dashboard's secrets, tokens and audit pages in
// headless Chromium: a secret created and rotated through write-only
// fields is listed by name and version while its value is nowhere on the
// page (nor kept in the field); a token created there is shown once and
// works; the audit log lists both writes under the dashboard's token.
func TestWebAccess(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	chromium := needChromium(t)
	httpAddr := freeAddr(t)
	c := newCluster(t, "sqlite://"+filepath.Join(t.TempDir(), "arcade.db"), "--http-listen", httpAddr)
	b := newBrowser(t, chromium, "http://"+httpAddr)
	b.open("/login")
	b.waitJS("the login page", `document.querySelector('#token')`)
	b.run("log in", chromedp.SendKeys(chromedp.CSS("#token"), apiToken), chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	b.waitJS("the pipelines page", `location.pathname === '/pipelines'`)

	first, second := randomValue("web-first"), randomValue("web-second")
	b.open("/secrets")
	b.waitJS("the secrets page", `document.querySelector('#secret-form') && document.querySelector('[data-testid=secrets]')`)
	if typ := evalJS[string](b, `document.querySelector('#secret-value').type`); typ != "password" {
		t.Errorf("the value field is of type %q, want password", typ)
	}
	b.run("fill the form", chromedp.SendKeys(chromedp.CSS("#secret-name"), "WEB_TOKEN"),
		chromedp.SetValue(chromedp.CSS("#secret-scope"), "SECRET_SCOPE_PIPELINE"))
	evalJS[bool](b, `document.querySelector('#secret-scope').dispatchEvent(new Event('change')), true`)
	b.run("fill the form", chromedp.SendKeys(chromedp.CSS("#secret-target"), "web"),
		chromedp.SendKeys(chromedp.CSS("#secret-value"), first), chromedp.SendKeys(chromedp.CSS("#secret-description"), "from the dashboard"),
		chromedp.Click(chromedp.CSS("#create-secret")))
	b.waitJS("the secret listed", `document.querySelector('tr[data-secret=WEB_TOKEN][data-scope=pipeline][data-version="1"]')`)
	b.screenshot("access-01-secrets")
	noValue := func(v string) {
		t.Helper()
		html := evalJS[string](b, `document.documentElement.outerHTML + [...document.querySelectorAll('input')].map(i => i.value).join(' ')`)
		if strings.Contains(html, v) {
			t.Errorf("the page holds the secret's value %s", v)
		}
	}
	noValue(first)

	b.run("rotate", chromedp.Click(chromedp.CSS(`button[data-rotate=WEB_TOKEN]`)), chromedp.WaitVisible(chromedp.CSS("#rotate-value")),
		chromedp.SendKeys(chromedp.CSS("#rotate-value"), second), chromedp.Click(chromedp.CSS("#rotate-secret")))
	b.waitJS("version 2", `document.querySelector('tr[data-secret=WEB_TOKEN][data-version="2"]')`)
	noValue(second)
	got, err := secretv1.NewSecretServiceClient(c.conn).GetSecret(context.Background(), &secretv1.GetSecretRequest{Name: "WEB_TOKEN",
		Scope: secretv1.SecretScope_SECRET_SCOPE_PIPELINE, Target: "web"})
	if err != nil || got.GetSecret().GetVersion() != 2 || got.GetSecret().GetDescription() != "from the dashboard" {
		t.Errorf("the secret as the API sees it: %v %v", got, err)
	}

	// A token, shown once, that works.
	b.open("/tokens")
	b.waitJS("the tokens page", `document.querySelector('#token-name')`)
	b.run("create a token", chromedp.SendKeys(chromedp.CSS("#token-name"), "from-web"), chromedp.SendKeys(chromedp.CSS("#token-owner"), "ops"),
		chromedp.Click(chromedp.CSS("#create-token")))
	b.waitJS("the token shown", `document.querySelector('#new-token') && document.querySelector('#new-token').value.startsWith('arc_')`)
	b.waitJS("the token listed", `document.querySelector('tr[data-token=from-web][data-state=active]')`)
	newToken := evalJS[string](b, `document.querySelector('#new-token').value`)
	conn := c.asToken(t, newToken)
	if _, err := secretv1.NewSecretServiceClient(conn).ListSecrets(context.Background(), &secretv1.ListSecretsRequest{}); err != nil {
		t.Errorf("the token from the page: %v", err)
	}
	b.screenshot("access-02-tokens")

	b.open("/audit")
	b.waitJS("the audit entries", `document.querySelectorAll('[data-testid=audit] tr[data-actor=api_token]').length >= 3`)
	text := evalJS[string](b, `document.querySelector('[data-testid=audit]').innerText`)
	for _, want := range []string{"SecretService/CreateSecret", "SecretService/UpdateSecret", "TokenService/CreateToken", "name=WEB_TOKEN", "(http)"} {
		if !strings.Contains(text, want) {
			t.Errorf("the audit page misses %q:\n%s", want, text)
		}
	}
	b.screenshot("access-03-audit")
}
