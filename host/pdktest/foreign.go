package pdktest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// foreignMissing skips t because a toolchain is missing, or fails it when
// ARCADE_REQUIRE_FOREIGN=1 (CI).
func foreignMissing(t testing.TB, what string, err error, install string) {
	t.Helper()
	if os.Getenv("ARCADE_REQUIRE_FOREIGN") == "1" {
		t.Fatalf("%s required but unavailable: %v (%s)", what, err, install)
	}
	t.Skipf("%s unavailable (%v); %s to run this test", what, err, install)
}

// BuildC compiles one C source file of a plugin with clang and wasi-libc,
// as examples/plugin-c's Makefile does, the C header of pdk/c (folder
// include) on the include path, into a temporary folder. Without clang or
// wasi-libc the test skips, unless ARCADE_REQUIRE_FOREIGN=1.
func BuildC(t testing.TB, src, include string) string {
	t.Helper()
	clang, err := exec.LookPath("clang")
	if err == nil {
		_, err = os.Stat("/usr/lib/wasm32-wasi/crt1-reactor.o")
	}
	if err != nil {
		foreignMissing(t, "C toolchain", err, "apt-get install clang lld wasi-libc libclang-rt-dev-wasm32")
	}
	out := filepath.Join(t.TempDir(), "plugin.wasm")
	cmd := exec.Command(clang, "--target=wasm32-wasi", "--sysroot=/usr", "-isystem", "/usr/include/wasm32-wasi",
		"-L/usr/lib/wasm32-wasi", "-mexec-model=reactor", "-I", include, "-O2", "-Wall", "-Wextra", "-Werror", "-o", out, src)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("clang: %v\n%s", err, b)
	}
	return out
}

// BuildAssemblyScript compiles dir/assembly/index.ts with asc, as
// examples/plugin-as's package.json build script does, into a temporary
// folder. It needs node and `npm ci --prefix DIR`; without them the test
// skips, unless ARCADE_REQUIRE_FOREIGN=1.
func BuildAssemblyScript(t testing.TB, dir string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	asc, _ := filepath.Abs(filepath.Join(dir, "node_modules", "assemblyscript", "bin", "asc.js"))
	if err == nil {
		_, err = os.Stat(asc)
	}
	if err != nil {
		foreignMissing(t, "AssemblyScript", err, "npm ci --prefix "+dir)
	}
	out := filepath.Join(t.TempDir(), "plugin.wasm")
	cmd := exec.Command(node, asc, filepath.Join("assembly", "index.ts"), "--outFile", out, "--optimize",
		"--runtime", "incremental", "--use", "abort=assembly/index/abort")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("asc: %v\n%s", err, b)
	}
	return out
}
