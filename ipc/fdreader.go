package ipc

import (
	"io"

	"golang.org/x/sys/unix"
)

// FDReader reads a blocking descriptor with read(2), retrying EINTR; 0
// bytes is io.EOF. Both ends of rex use it where an os.File would cost
// more than the read: the rex-exec client reading its script (an os.File
// starts Go's poller, which nothing else there uses) and the broker reading
// a small file it reopened by name (no poller registration, no finalizer).
type FDReader int

func (r FDReader) Read(b []byte) (int, error) {
	for {
		n, err := unix.Read(int(r), b)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(b) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}
