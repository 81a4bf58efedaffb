// Package web is Arcade's dashboard: plain HTML, CSS and ES modules embedded
// in the binary, with no build step. It talks to the HTTP/JSON API
// (server/gateway) with the API token the user logs in with.
package web

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/go-arcade/arcade/core/events"
)

//go:embed static
var static embed.FS

// Handler serves the dashboard: the files under static/, and index.html for
// every other path so that the dashboard's own URLs (/pipelines,
// /jobs/ID#L12…) load it.
func Handler() http.Handler {
	root, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(root)
	index, err := fs.ReadFile(root, "index.html")
	if err != nil {
		panic(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
		name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
		if name == "event-names.json" {
			h.Set("Content-Type", "application/json")
			h.Set("Cache-Control", "no-cache")
			w.Write(eventNames) //nolint:errcheck // the client went away
			return
		}
		if name != "" && name != "index.html" {
			if st, err := fs.Stat(root, name); err == nil && !st.IsDir() {
				h.Set("Cache-Control", "no-cache")
				files.ServeHTTP(w, r)
				return
			}
			if path.Ext(name) != "" {
				http.NotFound(w, r)
				return
			}
		}
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		w.Write(index) //nolint:errcheck // the client went away
	})
}

// eventNames is the list of event names (core/events) the dashboard's
// filters offer, as JSON: [{"name", "help"}…].
var eventNames = func() []byte {
	type entry struct {
		Name string `json:"name"`
		Help string `json:"help"`
	}
	var out []entry
	for _, d := range events.Defs() {
		out = append(out, entry{string(d.Name), d.Help})
	}
	b, err := json.Marshal(out)
	if err != nil {
		panic(err) // fixed data
	}
	return b
}()
