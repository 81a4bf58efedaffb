package pdk_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/go-arcade/arcade/pdk"
)

// TestUnmarshalBytes: the content member is read however the JSON spells
// it: spaces, a decoy "content" inside another member, escapes in the
// string (decoded whole by encoding/json), absent.
func TestUnmarshalBytes(t *testing.T) {
	cases := []struct {
		input, key, content string
	}{
		{`{"metadata":{"content":"ZGVjb3k="},"key":"a","content":"cmVhbA=="}`, "a", "real"},
		{`{"key":"b","content":"\/\/8="}`, "b", "\xff\xff"},
		{"{ \"key\" : \"c\" ,\n \"content\" : \"eA==\" }", "c", "x"},
		{`{"content":"","key":"d"}`, "d", ""},
		{`{"key":"e"}`, "e", ""},
		{`{"key":"f","list":[1,{"content":"x"}],"n":null,"content":"Zg=="}`, "f", "f"},
	}
	for _, tc := range cases {
		var r pdk.SaveRequest
		if err := pdk.UnmarshalBytes([]byte(tc.input), &r, "content", &r.Content); err != nil {
			t.Fatalf("%s: %v", tc.input, err)
		}
		if r.Key != tc.key || string(r.Content) != tc.content {
			t.Errorf("%s: key %q content %q, want %q %q", tc.input, r.Key, r.Content, tc.key, tc.content)
		}
	}
	var r pdk.SaveRequest
	if err := pdk.UnmarshalBytes([]byte(`{"key":"g","content":"***"}`), &r, "content", &r.Content); err == nil {
		t.Error("bad base64 accepted")
	}
}

// TestMarshalBytes: the spliced output is the JSON encoding/json would
// write.
func TestMarshalBytes(t *testing.T) {
	content := bytes.Repeat([]byte{0, 1, 2, 0xfe}, 1000)
	for _, resp := range []pdk.LoadResponse{{Status: pdk.StatusSuccess, Object: &pdk.Object{Key: "k"}}, {}} {
		got, err := pdk.MarshalBytes(resp, "content", content)
		if err != nil {
			t.Fatal(err)
		}
		var back pdk.LoadResponse
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%s: %v", got, err)
		}
		if !bytes.Equal(back.Content, content) || back.Status != resp.Status {
			t.Errorf("round trip of %s lost something", got)
		}
	}
}

func FuzzUnmarshalBytes(f *testing.F) {
	for _, s := range []string{`{"key":"a","content":"cmVhbA=="}`, `{"content":"\/\/8="}`, `{"a":[{"content":"x"}],"content":""}`, `[]`, `{"content":1}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// The cut agrees with encoding/json on input both accept, unless a
		// member is spelled twice (encoding/json keeps the last one).
		if strings.Count(strings.ToLower(s), "content") > 1 || strings.Contains(s, `\u`) {
			return
		}
		var fast, slow pdk.SaveRequest
		errFast := pdk.UnmarshalBytes([]byte(s), &fast, "content", &fast.Content)
		errSlow := json.Unmarshal([]byte(s), &slow)
		if errFast == nil && errSlow == nil && (fast.Key != slow.Key || !bytes.Equal(fast.Content, slow.Content)) {
			t.Fatalf("%q: cut read key %q content %q, encoding/json %q %q", s, fast.Key, fast.Content, slow.Key, slow.Content)
		}
	})
}
