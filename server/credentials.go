package server

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-arcade/arcade/server/auth"
)

// The token variables of the credentials file.
const (
	agentTokenKey = "ARCADE_AGENT_TOKEN"
	apiTokenKey   = "ARCADE_API_TOKEN"
)

// loadCredentials fills the tokens not given from DataDir/credentials.env,
// generating them there the first time, so that a local set-up works with
// no configuration and keeps its tokens across restarts. A token given
// otherwise (environment, flag, configuration) is not written to the file,
// and one the file held for it is struck out as stale, so that the file
// never holds a token that does not work. It logs where each token comes
// from and returns the file when it holds the live API token, else "".
func loadCredentials(cfg *Config, now time.Time, logger *slog.Logger) (string, error) {
	path := filepath.Join(cfg.DataDir, "credentials.env")
	saved := map[string]string{}
	exists := false
	if f, err := os.Open(path); err == nil {
		exists = true
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if strings.HasPrefix(line, "#") {
				continue
			}
			if k, v, ok := strings.Cut(line, "="); ok {
				saved[k] = v
			}
		}
		f.Close()
	}
	type token struct {
		key   string
		value *string
		from  string
		// inFile: the token lives in the file (read or generated there).
		inFile, generated bool
	}
	tokens := []*token{
		{key: agentTokenKey, value: &cfg.AgentToken, from: cfg.AgentTokenFrom},
		{key: apiTokenKey, value: &cfg.APIToken, from: cfg.APITokenFrom},
	}
	var lines []string
	changed := false
	for _, t := range tokens {
		switch {
		case *t.value != "":
			if t.from == "" {
				t.from = "the server configuration"
			}
			if _, had := saved[t.key]; had {
				// Struck out: a token in the file that the server does not
				// take would be refused (401) if someone used it.
				lines = append(lines, fmt.Sprintf("# %s: not used since %s: the server takes it from %s.", t.key, now.UTC().Format(time.DateTime+" MST"), t.from))
				changed = true
			}
			continue
		case saved[t.key] != "":
			*t.value = saved[t.key]
		default:
			*t.value = auth.NewToken()
			t.generated, changed = true, true
		}
		t.inFile, t.from = true, path
		lines = append(lines, t.key+"="+*t.value)
	}
	var generated []string
	for _, t := range tokens {
		if t.generated {
			generated = append(generated, t.key)
		}
	}
	if changed && (exists || len(generated) > 0) {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return "", fmt.Errorf("create data dir: %w", err)
		}
		content := "# Arcade's generated tokens (set -a; . " + path + "; set +a). Set ARCADE_AGENT_TOKEN and\n" +
			"# ARCADE_API_TOKEN (or agent_token, api_token) to choose them yourself.\n" + strings.Join(lines, "\n") + "\n"
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			return "", fmt.Errorf("write credentials: %w", err)
		}
	}
	logger.Info("tokens", "agent_token_from", tokens[0].from, "api_token_from", tokens[1].from)
	if len(generated) > 0 {
		logger.Warn("generated tokens, kept in the credentials file", "tokens", generated, "path", path, "hint", "set -a; . "+path+"; set +a")
	}
	if tokens[1].inFile {
		return path, nil
	}
	return "", nil
}
