//go:build wasip1

// Command headers is a test plugin: its execute makes the request its
// params describe with pdk.FetchWithHeaders and returns status, body and
// headers.
package main

import "github.com/go-arcade/arcade/pdk"

var meta = pdk.Metadata{Name: "headers", Kind: pdk.KindCustom, Version: "1.0.0"}

//go:wasmexport metadata
func metadata() int32 { return pdk.Describe(meta) }

//go:wasmexport execute
func execute() int32 {
	return pdk.Handle(func(req *pdk.ExecuteRequest) (*pdk.ExecuteResponse, error) {
		resp, err := pdk.FetchWithHeaders(pdk.Request{Method: req.Params.String("method", "GET"), URL: req.Params.String("url", "")})
		if err != nil {
			return nil, err
		}
		headers := pdk.Params{}
		for k, v := range resp.Header {
			headers[k] = v
		}
		return &pdk.ExecuteResponse{Status: pdk.StatusSuccess,
			Result: pdk.Params{"status": float64(resp.StatusCode), "body": string(resp.Body), "headers": map[string]any(headers)}}, nil
	})
}

func main() {}
