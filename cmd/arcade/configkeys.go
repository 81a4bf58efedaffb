package main

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
)

// unknownKeys lists the keys of a configuration file (raw, as parsed) that
// no field of t (a struct with koanf tags) reads, by their dotted path, each
// with the nearest known key when one is close ("notfy: unknown key; did you
// mean notify?"). Maps take any key; lists of structs are checked item by
// item.
func unknownKeys(raw map[string]any, t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	fields := map[string]reflect.Type{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("koanf"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = f.Type
		names = append(names, tag)
	}
	var out []string
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		path := prefix + k
		ft, ok := fields[k]
		if !ok {
			msg := path + ": unknown key"
			if near := nearest(k, names); near != "" {
				msg += "; did you mean " + prefix + near + "?"
			}
			out = append(out, msg)
			continue
		}
		out = append(out, unknownIn(raw[k], ft, path)...)
	}
	return out
}

var durationType = reflect.TypeOf(time.Duration(0))

func unknownIn(v any, t reflect.Type, path string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		return nil
	case t.Kind() == reflect.Struct:
		if m, ok := v.(map[string]any); ok {
			return unknownKeys(m, t, path+".")
		}
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		items, _ := v.([]any)
		var out []string
		for i, it := range items {
			if m, ok := it.(map[string]any); ok {
				out = append(out, unknownKeys(m, t.Elem(), fmt.Sprintf("%s[%d].", path, i))...)
			}
		}
		return out
	}
	return nil
}

// nearest is the name closest to s when it is a near miss: at most two
// edits away, and fewer than half its length.
func nearest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(s, n); d < bestD && d*2 < len(n) {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Damerau–Levenshtein distance (adjacent swaps count
// one) between a and b.
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
