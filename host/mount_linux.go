//go:build linux

package host

import (
	"os"
	"syscall"
	"unsafe"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"golang.org/x/sys/unix"
)

// setAppend turns O_APPEND on or off on an open file.
func setAppend(f *os.File, enable bool) experimentalsys.Errno {
	rc, err := f.SyscallConn()
	if err != nil {
		return experimentalsys.UnwrapOSError(err)
	}
	var opErr error
	err = rc.Control(func(fd uintptr) {
		flags, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		if err != nil {
			opErr = err
			return
		}
		if enable {
			flags |= unix.O_APPEND
		} else {
			flags &^= unix.O_APPEND
		}
		_, opErr = unix.FcntlInt(fd, unix.F_SETFL, flags)
	})
	if err == nil {
		err = opErr
	}
	return experimentalsys.UnwrapOSError(err)
}

// utimens sets an open file's times (futimens: utimensat with a NULL path).
func utimens(f *os.File, atim, mtim int64) experimentalsys.Errno {
	ts := [2]unix.Timespec{timespec(atim), timespec(mtim)}
	rc, err := f.SyscallConn()
	if err != nil {
		return experimentalsys.UnwrapOSError(err)
	}
	var errno syscall.Errno
	err = rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall6(unix.SYS_UTIMENSAT, fd, 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	})
	if err == nil && errno != 0 {
		err = errno
	}
	return experimentalsys.UnwrapOSError(err)
}

func timespec(t int64) unix.Timespec {
	if t == experimentalsys.UTIME_OMIT {
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	return unix.NsecToTimespec(t)
}
