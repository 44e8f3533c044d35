package ipc

import (
	"errors"
	"fmt"
)

// Code is the only error information that crosses a process boundary, with
// a public message. Denials are their own code: nothing ever decides that
// an error is a denial by looking at its text.
type Code uint16

// Error codes.
const (
	CodeOK          Code = 0
	CodeDenied      Code = 1  // Cedar denied the request
	CodeNotFound    Code = 2  // no such file or object
	CodeExists      Code = 3  // object already exists
	CodeInvalid     Code = 4  // malformed request or argument (bad path, bad option)
	CodeUnsupported Code = 5  // unknown op or unsupported object type
	CodeLimit       Code = 6  // a size, count or quota cap was hit
	CodeIO          Code = 7  // the host operation failed
	CodeInternal    Code = 8  // a bug or unexpected state in the broker
	CodeProtocol    Code = 9  // the peer broke the protocol; the session ends
	CodeTimeout     Code = 10 // a deadline passed
	CodeNotDir      Code = 11 // a directory was expected
	CodeIsDir       Code = 12 // a directory was not expected
	CodeLoop        Code = 13 // a symlink was met where none may be followed, or too many
	CodeXDev        Code = 14 // the path crosses a mount the broker will not cross
	CodeNotEmpty    Code = 15 // directory not empty
	CodeBusy        Code = 16 // the broker is at capacity
	CodeVersion     Code = 17 // protocol version mismatch
)

var codeNames = map[Code]string{
	CodeOK: "ok", CodeDenied: "denied", CodeNotFound: "not_found", CodeExists: "exists",
	CodeInvalid: "invalid", CodeUnsupported: "unsupported", CodeLimit: "limit", CodeIO: "io",
	CodeInternal: "internal", CodeProtocol: "protocol", CodeTimeout: "timeout",
	CodeNotDir: "not_dir", CodeIsDir: "is_dir", CodeLoop: "loop", CodeXDev: "xdev",
	CodeNotEmpty: "not_empty", CodeBusy: "busy", CodeVersion: "version",
}

func (c Code) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("code(%d)", uint16(c))
}

// Denial names what Cedar refused.
type Denial struct {
	Action    string   `msgpack:"action" json:"action"`
	Resource  string   `msgpack:"resource" json:"resource"`
	PolicyIDs []string `msgpack:"policy_ids" json:"policy_ids"`
}

// Error is an error with a wire code. Message is public: it is shown to the
// script, so it never contains anything the script may not know.
type Error struct {
	Code    Code
	Message string
	Denial  *Denial
}

func (e *Error) Error() string { return e.Message }

// Is matches on the code, so errors.Is(err, &Error{Code: CodeDenied}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Message == ""
}

// Errorf makes an *Error with a formatted public message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the wire code of err: its own if it is (or wraps) an
// *Error, CodeOK for nil, CodeInternal otherwise.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
