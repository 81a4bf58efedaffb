package tmpfs

import (
	"strconv"
	"syscall"
)

func mount(dir string, size int64) error {
	return syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size="+strconv.FormatInt(size, 10))
}

func unmount(dir string) error {
	if err := syscall.Unmount(dir, 0); err != nil {
		// Something still holds a file open there: let it go when it closes.
		return syscall.Unmount(dir, syscall.MNT_DETACH)
	}
	return nil
}
