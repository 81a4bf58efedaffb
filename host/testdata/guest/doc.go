// Package guest is a minimal guest-side helper for the host's test plugins:
// it speaks the Extism kernel ABI (imports from extism:host/env) from plain Go
// built with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared. It is test support,
// not the PDK.
package guest
