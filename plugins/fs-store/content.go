//go:build wasip1

package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/go-arcade/arcade/pdk"
)

// Objects travel base64-encoded in the JSON of save's input and load's
// output. encoding/json reads and writes a few MB/s inside the sandbox, so
// the content string is cut out of the input (and spliced into the output)
// by hand, and only the small rest goes through encoding/json. An input the
// cut does not understand (a content string with escapes, say) is decoded
// by encoding/json whole.

//go:wasmexport save
func save() int32 {
	return pdk.Run(func(input []byte) ([]byte, error) {
		var r pdk.SaveRequest
		rest, b64, cut := cutContent(input)
		if !cut {
			rest = input
		}
		if len(bytes.TrimSpace(rest)) > 0 {
			if err := json.Unmarshal(rest, &r); err != nil {
				return nil, fmt.Errorf("reading input: %w", err)
			}
		}
		if cut {
			r.Content = make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
			n, err := base64.StdEncoding.Decode(r.Content, b64)
			if err != nil {
				return nil, fmt.Errorf("reading input: content: %w", err)
			}
			r.Content = r.Content[:n]
		}
		out, err := runSave(&r)
		if err != nil {
			return nil, err
		}
		return json.Marshal(out)
	})
}

//go:wasmexport load
func load() int32 {
	return pdk.Run(func(input []byte) ([]byte, error) {
		var r pdk.LoadRequest
		if len(bytes.TrimSpace(input)) > 0 {
			if err := json.Unmarshal(input, &r); err != nil {
				return nil, fmt.Errorf("reading input: %w", err)
			}
		}
		out, err := runLoad(&r)
		if err != nil {
			return nil, err
		}
		content := out.Content
		out.Content = nil
		b, err := json.Marshal(out)
		if err != nil || len(content) == 0 {
			return b, err
		}
		// b ends with the object's closing brace and is not empty ({"status":…}).
		enc := base64.StdEncoding
		res := make([]byte, 0, len(b)+len(`,"content":""`)+enc.EncodedLen(len(content)))
		res = append(res, b[:len(b)-1]...)
		res = append(res, `,"content":"`...)
		res = enc.AppendEncode(res, content)
		res = append(res, `"}`...)
		return res, nil
	})
}

// cutContent finds the member "content" of the top-level JSON object in
// input whose value is a string without escapes; it returns input with that
// value emptied, and the string's bytes. ok is false when there is no such
// member or input is not an object this scan follows.
func cutContent(input []byte) (rest, value []byte, ok bool) {
	i := skipSpace(input, 0)
	if i >= len(input) || input[i] != '{' {
		return nil, nil, false
	}
	i++
	for {
		i = skipSpace(input, i)
		if i >= len(input) || input[i] != '"' {
			return nil, nil, false // "}" (no member) or not JSON we follow
		}
		keyEnd, esc := scanString(input, i)
		if keyEnd < 0 {
			return nil, nil, false
		}
		key := input[i+1 : keyEnd-1]
		i = skipSpace(input, keyEnd)
		if i >= len(input) || input[i] != ':' {
			return nil, nil, false
		}
		i = skipSpace(input, i+1)
		if i >= len(input) {
			return nil, nil, false
		}
		if !esc && string(key) == "content" && input[i] == '"' {
			end, vesc := scanString(input, i)
			if end < 0 || vesc {
				return nil, nil, false
			}
			rest = make([]byte, 0, len(input)-(end-i)+2)
			rest = append(rest, input[:i]...)
			rest = append(rest, `""`...)
			rest = append(rest, input[end:]...)
			return rest, input[i+1 : end-1], true
		}
		if i = skipValue(input, i); i < 0 {
			return nil, nil, false
		}
		i = skipSpace(input, i)
		if i >= len(input) || input[i] != ',' {
			return nil, nil, false
		}
		i++
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the index just past the string starting at b[i] (a
// quote) and whether it has escapes; -1 when it does not end.
func scanString(b []byte, i int) (int, bool) {
	// bytes.IndexByte is far faster than a byte loop under wasm.
	esc := false
	for j := i + 1; j < len(b); {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return -1, esc
		}
		q := j + k
		bs := bytes.IndexByte(b[j:q], '\\')
		if bs < 0 {
			return q + 1, esc
		}
		esc = true
		j += bs + 2 // past the escaped character
	}
	return -1, esc
}

// skipValue returns the index just past the value starting at b[i], -1 when
// it does not end.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		end, _ := scanString(b, i)
		return end
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, _ := scanString(b, i)
				if end < 0 {
					return -1
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\n' && b[i] != '\t' && b[i] != '\r' {
		i++
	}
	return i
}
