package pdktest_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// wasmImports lists a module's imports as "module.name", read from its
// import section.
func wasmImports(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) < 8 || !bytes.Equal(data[:4], []byte("\x00asm")) {
		return nil, fmt.Errorf("%s: not a wasm module", path)
	}
	r := bufio.NewReader(bytes.NewReader(data[8:]))
	for {
		id, err := r.ReadByte()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		size, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, err
		}
		section := make([]byte, size)
		if _, err := io.ReadFull(r, section); err != nil {
			return nil, err
		}
		if id == 2 {
			return parseImports(bufio.NewReader(bytes.NewReader(section)))
		}
	}
}

func parseImports(r *bufio.Reader) ([]string, error) {
	name := func() (string, error) {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return "", err
		}
		b := make([]byte, n)
		_, err = io.ReadFull(r, b)
		return string(b), err
	}
	limits := func() error {
		flag, err := r.ReadByte()
		if err != nil {
			return err
		}
		if _, err := binary.ReadUvarint(r); err != nil {
			return err
		}
		if flag&1 == 1 {
			_, err = binary.ReadUvarint(r)
		}
		return err
	}
	count, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	var out []string
	for range count {
		mod, err := name()
		if err != nil {
			return nil, err
		}
		field, err := name()
		if err != nil {
			return nil, err
		}
		kind, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		switch kind {
		case 0: // function: type index
			_, err = binary.ReadUvarint(r)
		case 1: // table: reftype, limits
			if _, err = r.ReadByte(); err == nil {
				err = limits()
			}
		case 2: // memory: limits
			err = limits()
		case 3: // global: valtype, mutability
			_, err = r.Discard(2)
		default:
			err = fmt.Errorf("unknown import kind %d", kind)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, mod+"."+field)
	}
	return out, nil
}
