// Package sdktest provides a fake broker for tests of sdk and worker: a
// Caller that records every request and answers from canned replies.
//
// Trust: test only; it is never linked into a rex binary.
package sdktest

import (
	"fmt"
	"os"
	"sync"

	"github.com/rex-sh/rex/ipc"
)

// Handler answers one request: a reply body (encoded and decoded through
// the ipc codec, like a real reply), an optional descriptor, or an error.
type Handler func(req any) (resp any, f *os.File, err error)

// Call is one recorded request; Req is the request struct as sent.
type Call struct {
	Op  ipc.Op
	Req any
}

// Fake is a sdk.Caller. Ops without a handler fail with CodeUnsupported.
type Fake struct {
	mu       sync.Mutex
	calls    []Call
	handlers map[ipc.Op]Handler
}

// New returns a Fake with no handlers.
func New() *Fake { return &Fake{handlers: map[ipc.Op]Handler{}} }

// On sets the handler of op.
func (f *Fake) On(op ipc.Op, h Handler) *Fake {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers[op] = h
	return f
}

// Reply makes op always answer resp.
func (f *Fake) Reply(op ipc.Op, resp any) *Fake {
	return f.On(op, func(any) (any, *os.File, error) { return resp, nil, nil })
}

// Fail makes op always fail with err.
func (f *Fake) Fail(op ipc.Op, err error) *Fake {
	return f.On(op, func(any) (any, *os.File, error) { return nil, nil, err })
}

// Calls returns the requests made so far.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// Call implements sdk.Caller.
func (f *Fake) Call(op ipc.Op, req, resp any) (*os.File, error) {
	f.mu.Lock()
	f.calls = append(f.calls, Call{Op: op, Req: req})
	h := f.handlers[op]
	f.mu.Unlock()
	if h == nil {
		return nil, ipc.Errorf(ipc.CodeUnsupported, "fake broker: no handler for %v", op)
	}
	body, file, err := h(req)
	if err != nil {
		if file != nil {
			file.Close()
		}
		return nil, err
	}
	if resp != nil && body != nil {
		b, err := ipc.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("fake broker: marshal reply: %w", err)
		}
		if err := ipc.Unmarshal(b, resp); err != nil {
			return nil, ipc.Errorf(ipc.CodeProtocol, "fake broker: bad reply body for %v: %v", op, err)
		}
	}
	return file, nil
}

// Denied is the error the broker returns for a Cedar deny of action on
// resource, worded like Rex's.
func Denied(action, resource string) *ipc.Error {
	return &ipc.Error{
		Code: ipc.CodeDenied,
		Message: fmt.Sprintf("Permission denied: alice unauthorized to perform file_system::Action::%q for file_system::File::%q",
			action, resource),
		Denial: &ipc.Denial{
			Action:    fmt.Sprintf("file_system::Action::%q", action),
			Resource:  fmt.Sprintf("file_system::File::%q", resource),
			PolicyIDs: []string{"deny-secrets"},
		},
	}
}
