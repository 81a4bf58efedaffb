package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// receive copies the data messages recv yields into w until io.EOF,
// refusing more than size bytes, and returns how many bytes came and their
// sha256 (hex). Cache entries and job inputs come this way.
func receive(recv func() ([]byte, error), w io.Writer, size int64) (int64, string, error) {
	h := sha256.New()
	var n int64
	for {
		data, err := recv()
		if errors.Is(err, io.EOF) {
			return n, hex.EncodeToString(h.Sum(nil)), nil
		}
		if err != nil {
			return n, "", err
		}
		if n += int64(len(data)); n > size {
			return n, "", fmt.Errorf("more than the %d bytes announced", size)
		}
		h.Write(data)
		if _, err := w.Write(data); err != nil {
			return n, "", err
		}
	}
}
