//go:build wasip1

package main

import (
	"encoding/json"

	"github.com/go-arcade/arcade/pdk"
)

// Objects travel base64-encoded in the JSON of save's input and load's
// output; pdk.UnmarshalBytes and pdk.MarshalBytes move them past
// encoding/json, which is slow inside the sandbox.

//go:wasmexport save
func save() int32 {
	return pdk.Run(func(input []byte) ([]byte, error) {
		var r pdk.SaveRequest
		if err := pdk.UnmarshalBytes(input, &r, "content", &r.Content); err != nil {
			return nil, err
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
		if err := pdk.InputJSON(&r); err != nil {
			return nil, err
		}
		out, err := runLoad(&r)
		if err != nil {
			return nil, err
		}
		content := out.Content
		out.Content = nil
		return pdk.MarshalBytes(out, "content", content)
	})
}
