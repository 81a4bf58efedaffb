package main

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-arcade/arcade/core/plugininput"
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
			if near := plugininput.Nearest(k, names); near != "" {
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
