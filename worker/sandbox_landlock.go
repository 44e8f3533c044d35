package worker

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// errNoLandlock means the kernel has no usable Landlock; the worker goes on
// without it and says so on stderr (the broker's doctor decides whether
// that is acceptable).
var errNoLandlock = errors.New("landlock not supported by this kernel")

// landlockRuleset is struct landlock_ruleset_attr up to ABI 6. A kernel
// that knows fewer fields accepts the larger struct when the extra fields
// are zero, which handledRights guarantees.
type landlockRuleset struct {
	fs, net, scoped uint64
}

// handledRights lists every access right Landlock ABI abi can restrict.
// Handling a right without a rule that grants it denies it.
func handledRights(abi int) landlockRuleset {
	var r landlockRuleset
	r.fs = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE |
		unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR |
		unix.LANDLOCK_ACCESS_FS_REMOVE_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_FILE |
		unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_DIR |
		unix.LANDLOCK_ACCESS_FS_MAKE_REG | unix.LANDLOCK_ACCESS_FS_MAKE_SOCK |
		unix.LANDLOCK_ACCESS_FS_MAKE_FIFO | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK |
		unix.LANDLOCK_ACCESS_FS_MAKE_SYM
	if abi >= 2 {
		r.fs |= unix.LANDLOCK_ACCESS_FS_REFER
	}
	if abi >= 3 {
		r.fs |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
	}
	if abi >= 4 {
		r.net = unix.LANDLOCK_ACCESS_NET_BIND_TCP | unix.LANDLOCK_ACCESS_NET_CONNECT_TCP
	}
	if abi >= 5 {
		r.fs |= unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	}
	if abi >= 6 {
		r.scoped = unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | unix.LANDLOCK_SCOPE_SIGNAL
	}
	return r
}

// LandlockABI returns the kernel's Landlock ABI version, or errNoLandlock.
func LandlockABI() (int, error) {
	v, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	switch e {
	case 0:
		return int(v), nil
	case unix.ENOSYS, unix.EOPNOTSUPP:
		return 0, fmt.Errorf("%w (%v)", errNoLandlock, e)
	}
	return 0, fmt.Errorf("landlock version: %w", e)
}

// restrictLandlock denies every thread of the process every filesystem
// and network right and every scope the kernel's ABI knows. Landlock binds
// threads, not processes: the domain is applied on all threads at once
// (see allThreads), and threads started later inherit it. No rule grants
// anything, executing included: the worker never execs.
func restrictLandlock() error {
	abi, err := LandlockABI()
	if err != nil {
		return err
	}
	attr := handledRights(abi)
	rfd, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET,
		uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr), 0)
	if e != 0 {
		return fmt.Errorf("create ruleset (ABI %d): %w", abi, e)
	}
	defer unix.Close(int(rfd))
	if err := allThreads(unix.SYS_LANDLOCK_RESTRICT_SELF, rfd, 0, 0); err != nil {
		return fmt.Errorf("restrict self: %w", err)
	}
	return nil
}
