package host

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"unsafe"

	extism "github.com/extism/go-sdk"
	"github.com/tetratelabs/wazero/api"
)

// The fast data path. The kernel ABI moves a call's input and output eight
// bytes per host call (a 1 MiB input costs ≈22 ms). A module built with
// Arcade's PDK also exports two functions that let this host move them in
// one copy each, straight into and out of the module's own memory:
//
//	arcade_pdk_input(n i32) -> ptr i32   the module allocates n bytes for the
//	                                     next call's input and returns where
//	arcade_pdk_output() -> i64           the last call's output, ptr<<32 | len
//	                                     (0: none)
//
// The kind function itself is still called through the SDK (timeout, error
// and log handling unchanged). Small payloads are cheaper through the kernel
// than through an extra export call, so an input under fastMin bytes goes
// through the kernel (after the first fast call, which tells the module whose
// host it is), and the module hands over through arcade_pdk_output only
// outputs of fastMin bytes or more, leaving the kernel output empty; the
// host asks for it when the kernel output is empty or it wrote the input
// (the call also lets the module forget that input). Any other Extism
// runtime ignores the two exports and the module uses the kernel as usual; a
// module without them is called through the kernel here too.
const (
	fastInputExport  = "arcade_pdk_input"
	fastOutputExport = "arcade_pdk_output"
)

// fastMin is the smallest input written through arcade_pdk_input; the PDK
// has the same bound for outputs.
const fastMin = 512

type fastPath struct {
	mod    api.Module
	input  api.Function
	output api.Function
	// announced: the module has had one fast call and knows whose host
	// drives it.
	announced bool
}

// findFastPath returns the module's fast path, nil when it has none. The SDK
// does not expose an instance's main module, so it is read from the
// instance's mainModule field; with an SDK that has no such field the fast
// path is off and every call goes through the kernel.
func findFastPath(p *extism.Plugin) *fastPath {
	f := reflect.ValueOf(p).Elem().FieldByName("mainModule")
	if !f.IsValid() || f.Type() != reflect.TypeFor[api.Module]() {
		return nil
	}
	mod := *(*api.Module)(unsafe.Pointer(f.UnsafeAddr()))
	if mod == nil || mod.Memory() == nil {
		return nil
	}
	in, out := mod.ExportedFunction(fastInputExport), mod.ExportedFunction(fastOutputExport)
	if in == nil || out == nil ||
		!sameTypes(in.Definition().ParamTypes(), api.ValueTypeI32) ||
		!sameTypes(in.Definition().ResultTypes(), api.ValueTypeI32) ||
		!sameTypes(out.Definition().ParamTypes()) ||
		!sameTypes(out.Definition().ResultTypes(), api.ValueTypeI64) {
		return nil
	}
	return &fastPath{mod: mod, input: in, output: out}
}

func sameTypes(got []api.ValueType, want ...api.ValueType) bool {
	return bytes.Equal(got, want)
}

var errFastRange = errors.New("plugin returned a buffer outside its memory")

// call runs fn with the input written into the module when it is large,
// and the output read out of it when the module handed it over that way.
// Its results are those of extism.Plugin.CallWithContext.
func (f *fastPath) call(ctx context.Context, p *extism.Plugin, fn string, input []byte) (uint32, []byte, error) {
	if p.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.Timeout)
		defer cancel()
	}
	kernelIn, wrote := input, false
	if len(input) >= fastMin || !f.announced {
		res, err := f.input.Call(ctx, uint64(len(input)))
		if err != nil {
			return 1, nil, err
		}
		if len(input) > 0 && !f.mod.Memory().Write(api.DecodeU32(res[0]), input) {
			return 1, nil, errFastRange
		}
		f.announced, kernelIn, wrote = true, nil, true
	}
	rc, kernelOut, callErr := p.CallWithContext(ctx, fn, kernelIn)
	if callErr != nil && p.GetError() != callErr.Error() {
		return rc, nil, callErr // the instance is broken: leave it alone
	}
	if callErr == nil && len(kernelOut) > 0 && !wrote {
		return rc, kernelOut, nil
	}
	// Collect the fast output and let the module forget the call's data;
	// after a reported error this only clears them.
	res, err := f.output.Call(ctx)
	if callErr != nil {
		return rc, nil, callErr
	}
	if err != nil {
		return 1, nil, err
	}
	ptr, n := uint32(res[0]>>32), uint32(res[0])
	if n == 0 {
		return rc, kernelOut, nil
	}
	view, ok := f.mod.Memory().Read(ptr, n)
	if !ok {
		return 1, nil, errFastRange
	}
	return rc, bytes.Clone(view), nil
}
