package plugins_test

import (
	"encoding/json"
	"testing"

	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/host/pdktest"
	"github.com/go-arcade/arcade/pdk"
)

// TestFSStoreContentForms: fs-store reads the content of a save however the
// JSON spells it (spaces, a decoy "content" key inside metadata, escapes in
// the string), and a caller's sha256 is recorded as given.
func TestFSStoreContentForms(t *testing.T) {
	p := pdktest.Load(t, wasm(t, "fs-store"), pdktest.Options{Kind: "storage",
		Paths: []host.PathGrant{{Host: t.TempDir(), Guest: "/store", Mode: "rw"}}})
	cases := []struct {
		key, input, want string
	}{
		{"a", `{"metadata":{"content":"ZGVjb3k="},"key":"a","content":"cmVhbA=="}`, "real"},
		{"b", `{"key":"b","content":"\/\/8="}`, "\xff\xff"},
		{"c", "{ \"key\" : \"c\" ,\n \"content\" : \"eA==\" }", "x"},
		{"d", `{"content":"","key":"d"}`, ""},
	}
	for _, tc := range cases {
		if _, err := p.Plugin.Call(t.Context(), "save", []byte(tc.input)); err != nil {
			t.Fatalf("save %s: %v", tc.input, err)
		}
		out, err := p.Plugin.Call(t.Context(), "load", []byte(`{"key":"`+tc.key+`"}`))
		if err != nil {
			t.Fatalf("load %s: %v", tc.key, err)
		}
		var loaded pdk.LoadResponse
		if err := json.Unmarshal(out, &loaded); err != nil {
			t.Fatalf("load %s: %v in %s", tc.key, err, out)
		}
		if string(loaded.Content) != tc.want || int(loaded.Object.Size) != len(tc.want) {
			t.Errorf("%s: loaded %q (size %d), want %q", tc.key, loaded.Content, loaded.Object.Size, tc.want)
		}
	}
	given := "0000000000000000000000000000000000000000000000000000000000000000"
	var saved pdk.SaveResponse
	if err := p.Call("save", pdk.SaveRequest{Key: "e", Content: []byte("e"), Metadata: map[string]string{"sha256": given}}, &saved); err != nil {
		t.Fatal(err)
	}
	if saved.Object.SHA256 != given {
		t.Errorf("recorded sha256 %s, want the one given", saved.Object.SHA256)
	}
	// Loads are verified by default: the recorded digest does not match.
	if err := p.Call("load", pdk.LoadRequest{Key: "e"}, nil); err == nil {
		t.Error("a load whose content does not match its sha256 passed")
	}
}
