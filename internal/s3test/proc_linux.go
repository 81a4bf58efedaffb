package s3test

import "syscall"

// sysProcAttr: the server dies with the test binary, even when it is killed.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
