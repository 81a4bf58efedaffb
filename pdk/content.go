package pdk

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// Bytes travel base64-encoded in the contract's JSON (a storage object's
// content, say). encoding/json reads and writes base64 at a few MB/s inside
// the sandbox, so UnmarshalBytes and MarshalBytes cut one such member out of
// the input (and splice it into the output) by hand, and only the small
// rest goes through encoding/json.

// UnmarshalBytes decodes the JSON object input into v, and the base64
// string of its top-level member field into *dst (which usually points into
// v, e.g. &req.Content). An input the cut does not follow (a string with
// escapes, say) is decoded by encoding/json whole.
func UnmarshalBytes(input []byte, v any, field string, dst *[]byte) error {
	rest, b64, cut := cutMember(input, field)
	if !cut {
		rest = input
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		if err := json.Unmarshal(rest, v); err != nil {
			return fmt.Errorf("reading input: %w", err)
		}
	}
	if cut {
		buf := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
		n, err := base64.StdEncoding.Decode(buf, b64)
		if err != nil {
			return fmt.Errorf("reading input: %s: %w", field, err)
		}
		*dst = buf[:n]
	}
	return nil
}

// MarshalBytes encodes v, a struct whose JSON is an object without the
// member field (leave it empty, with omitempty), and adds field with content
// in base64.
func MarshalBytes(v any, field string, content []byte) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(content) == 0 {
		return b, err
	}
	if len(b) < 2 || b[len(b)-1] != '}' {
		return nil, fmt.Errorf("writing output: %T is not a JSON object", v)
	}
	enc := base64.StdEncoding
	res := make([]byte, 0, len(b)+len(field)+8+enc.EncodedLen(len(content)))
	res = append(res, b[:len(b)-1]...)
	if len(b) > 2 {
		res = append(res, ',')
	}
	res = append(res, '"')
	res = append(res, field...)
	res = append(res, `":"`...)
	res = enc.AppendEncode(res, content)
	res = append(res, `"}`...)
	return res, nil
}

// cutMember finds the member field of the top-level JSON object in input
// whose value is a string without escapes; it returns input with that value
// emptied, and the string's bytes. ok is false when there is no such member
// or input is not an object this scan follows.
func cutMember(input []byte, field string) (rest, value []byte, ok bool) {
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
		if !esc && string(key) == field && input[i] == '"' {
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
