// Package plugininput checks the with: parameters of a step and the config
// of a plugin against what the plugin declares in its metadata: unknown
// keys (with the nearest declared one when it is a near miss), missing
// required keys, values of the wrong type.
package plugininput

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// Error is one refused key.
type Error struct {
	Key    string // the key as given (or the missing one)
	Reason string // "unknown param", "missing required config"…
	Hint   string // "did you mean channel?", or empty
}

func (e *Error) Error() string {
	s := e.Key + ": " + e.Reason
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

// Check checks given against declared; what names the inputs in messages
// ("param", "config"). Nothing declared means nothing is checked. Problems
// come in key order: unknown and mistyped keys, then missing ones.
func Check(what string, declared []*pluginv1.PluginInput, given map[string]string) []*Error {
	if len(declared) == 0 {
		return nil
	}
	var names []string
	for _, d := range declared {
		names = append(names, d.GetName())
	}
	keys := make([]string, 0, len(given))
	for k := range given {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []*Error
	for _, k := range keys {
		d := find(declared, k)
		if d == nil {
			e := &Error{Key: k, Reason: "unknown " + what}
			if near := Nearest(k, names); near != "" {
				e.Hint = "did you mean " + near + "?"
			} else {
				e.Hint = "declared: " + strings.Join(names, ", ")
			}
			out = append(out, e)
			continue
		}
		if err := checkType(d.GetType(), given[k]); err != nil {
			out = append(out, &Error{Key: k, Reason: fmt.Sprintf("%s wants a %s: %v", what, d.GetType(), err)})
		}
	}
	for _, d := range declared {
		if d.GetRequired() && !strings.HasSuffix(d.GetName(), ".*") {
			if _, ok := given[d.GetName()]; !ok {
				out = append(out, &Error{Key: d.GetName(), Reason: "missing required " + what})
			}
		}
	}
	return out
}

// Join is the problems in one line, "" when there are none.
func Join(errs []*Error) string {
	s := make([]string, len(errs))
	for i, e := range errs {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

func find(declared []*pluginv1.PluginInput, key string) *pluginv1.PluginInput {
	for _, d := range declared {
		n := d.GetName()
		if n == key || strings.HasSuffix(n, ".*") && strings.HasPrefix(key, strings.TrimSuffix(n, "*")) && len(key) > len(n)-1 {
			return d
		}
	}
	return nil
}

func checkType(typ, v string) error {
	switch typ {
	case "", "string":
		return nil
	case "bool":
		_, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
	case "number":
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			return fmt.Errorf("%q is not a number", v)
		}
	}
	return nil
}

// Nearest is the name closest to s when s is a near miss of it: at most two
// edits away (an adjacent swap is one), and fewer than half its length; ""
// otherwise.
func Nearest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(s, n); d < bestD && d*2 < len(n) {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the optimal-string-alignment distance between a and b.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
