// Package cachetest makes data for cache tests and benchmarks.
package cachetest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// GoModCache makes about size bytes of files shaped like a Go module
// cache: many modules of small source files (text, compressible) in a few
// directories each, some testdata, and the download cache's zips
// (incompressible), read-only like the real one.
func GoModCache(dir string, size int64) (files int, total int64, err error) {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"func", "return", "if", "err", "!=", "nil", "package", "import", "type", "struct", "for", "range", "string", "int", "ctx", "context.Context", "{", "}", "(", ")", "\n", "\t"}
	text := func(n int) []byte {
		var buf bytes.Buffer
		for buf.Len() < n {
			buf.WriteString(words[rng.IntN(len(words))])
			buf.WriteByte(' ')
		}
		return buf.Bytes()[:n]
	}
	put := func(p string, data []byte) {
		full := filepath.Join(dir, p)
		if err == nil {
			err = os.MkdirAll(filepath.Dir(full), 0o755)
		}
		if err == nil {
			err = os.WriteFile(full, data, 0o444)
		}
		files++
		total += int64(len(data))
	}
	for m := 0; total < size && err == nil; m++ {
		mod := fmt.Sprintf("pkg/mod/github.com/org%d/module%d@v1.%d.0", m%17, m, m%9)
		for d := 0; d < 1+rng.IntN(6); d++ {
			sub := fmt.Sprintf("%s/pkg%d", mod, d)
			for f := 0; f < 5+rng.IntN(25); f++ {
				put(fmt.Sprintf("%s/file%d.go", sub, f), text(1<<10+rng.IntN(24<<10)))
			}
		}
		if m%4 == 0 {
			blob := make([]byte, 64<<10+rng.IntN(512<<10))
			for i := range blob {
				blob[i] = byte(rng.Uint32())
			}
			put(mod+"/testdata/blob.bin", blob)
		}
		zip := make([]byte, 256<<10+rng.IntN(1<<20))
		for i := range zip {
			zip[i] = byte(rng.Uint32())
		}
		put(fmt.Sprintf("pkg/mod/cache/download/github.com/org%d/module%d/@v/v1.%d.0.zip", m%17, m, m%9), zip)
	}
	return files, total, err
}
