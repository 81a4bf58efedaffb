//go:build !linux

package host

import (
	"os"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

func setAppend(*os.File, bool) experimentalsys.Errno { return experimentalsys.ENOSYS }

func utimens(*os.File, int64, int64) experimentalsys.Errno { return experimentalsys.ENOSYS }
