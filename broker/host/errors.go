package host

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/rex-sh/rex/ipc"
)

// Sentinel errors, wrapped in *os.PathError like the errno values.
var (
	// ErrTooLarge: the object is bigger than the caller's cap.
	ErrTooLarge = errors.New("file too large")
	// ErrNotRegular: a content operation met a FIFO, socket, device or
	// symlink, which this package never opens for content.
	ErrNotRegular = errors.New("not a regular file")
	// ErrChanged: the object at the path is no longer the one that was
	// looked up (and authorised); the operation was not performed.
	ErrChanged = errors.New("changed during the operation")
	// ErrTooDeep: a recursive walk went deeper than maxDepth.
	ErrTooDeep = errors.New("directory tree too deep")
)

// Code maps an error of this package to its wire code. Permission errors
// become CodeIO, not CodeDenied: a denial is Cedar's word only.
func Code(err error) ipc.Code {
	var e *ipc.Error
	switch {
	case err == nil:
		return ipc.CodeOK
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, ErrTooLarge), errors.Is(err, ErrTooDeep):
		return ipc.CodeLimit
	case errors.Is(err, ErrNotRegular):
		return ipc.CodeUnsupported
	case errors.Is(err, unix.ELOOP):
		return ipc.CodeLoop // also errTooManyLinks and errMagicLink
	}
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return ipc.CodeIO
	}
	switch errno {
	case unix.ENOENT:
		return ipc.CodeNotFound
	case unix.EEXIST:
		return ipc.CodeExists
	case unix.ELOOP:
		return ipc.CodeLoop
	case unix.EXDEV:
		return ipc.CodeXDev
	case unix.ENOTDIR:
		return ipc.CodeNotDir
	case unix.EISDIR:
		return ipc.CodeIsDir
	case unix.ENOTEMPTY:
		return ipc.CodeNotEmpty
	case unix.EINVAL, unix.ENAMETOOLONG:
		return ipc.CodeInvalid
	case unix.EFBIG, unix.ENOSPC, unix.EDQUOT:
		return ipc.CodeLimit
	}
	return ipc.CodeIO
}

// publicText is the wording per code; it names no host detail, so the only
// variable part of a public message is the path the script itself asked for.
var publicText = map[ipc.Code]string{
	ipc.CodeNotFound:    "no such file or directory",
	ipc.CodeExists:      "file exists",
	ipc.CodeLoop:        "path contains a symlink; symlinks are not followed",
	ipc.CodeXDev:        "path crosses a mount point",
	ipc.CodeNotDir:      "not a directory",
	ipc.CodeIsDir:       "is a directory",
	ipc.CodeNotEmpty:    "directory not empty",
	ipc.CodeInvalid:     "invalid path or argument",
	ipc.CodeUnsupported: "not a regular file",
}

// WireError turns err into the *ipc.Error sent to the worker. The message
// names the path of the *os.PathError (always the canonical path the caller
// passed in, never a host-internal one) and a fixed text per code, so no
// errno text, descriptor number or resolved host path leaks.
func WireError(err error) *ipc.Error {
	if err == nil {
		return nil
	}
	var e *ipc.Error
	if errors.As(err, &e) {
		return e
	}
	code := Code(err)
	text, ok := publicText[code]
	if !ok {
		text = "operation failed"
	}
	for _, s := range []error{ErrTooLarge, ErrTooDeep, ErrChanged, ErrNotRegular, errTooManyLinks, errMagicLink} {
		if errors.Is(err, s) {
			text = s.Error()
			break
		}
	}
	var pe *os.PathError
	if errors.As(err, &pe) && pe.Path != "" {
		return &ipc.Error{Code: code, Message: fmt.Sprintf("%s: %s", pe.Path, text)}
	}
	return &ipc.Error{Code: code, Message: text}
}

// Symlink-following errors; both wrap ELOOP so Code gives CodeLoop.
var (
	errTooManyLinks = &linkError{"too many levels of symbolic links"}
	errMagicLink    = &linkError{"path contains a magic link, which is never followed"}
)

type linkError struct{ s string }

func (e *linkError) Error() string        { return e.s }
func (e *linkError) Is(target error) bool { return target == unix.ELOOP || target == error(e) }

func pathErr(op, path string, err error) error {
	return &os.PathError{Op: op, Path: path, Err: err}
}
