package broker

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/ipc"
)

// writeTimeout bounds how long a reply may wait for a worker that does not
// read: past it the session is a protocol violation.
const writeTimeout = 5 * time.Second

// handler serves one op. It decodes its own body into a concrete struct,
// authorises, operates, and returns the reply body and at most one
// descriptor (a regular file opened with exactly the granted mode).
type handler func(s *session, body []byte) (resp any, fd *os.File, err error)

// handlers is the dispatch table; an op not in it is CodeUnsupported.
var handlers = map[ipc.Op]handler{}

// session serves one worker's socketpair for one run. Requests are served
// one at a time, in order.
type session struct {
	run *run
	pc  *ipc.PacketConn

	mu      sync.Mutex
	denials []ipc.Denial
	ops     int

	body, pkt []byte // reply encoding buffers, reused from reply to reply (serve's goroutine only)
	// audit holds the lines of quiet decisions not yet written (serve's
	// goroutine only): see auditQuiet.
	audit []byte
	// after holds what the current request leaves to close once its
	// reply is sent (serve's goroutine only): see later.
	after []closer
	// The envelopes of the current request and its reply (serve's
	// goroutine only): through an interface to the codec, a local one
	// would be allocated for every call.
	req ipc.Request
	rep ipc.Response
	// info is the FileInfo of a stat or open reply, which is encoded
	// before the next request is read (serve's goroutine only).
	info ipc.FileInfo
}

// closer is what later closes.
type closer interface{ close() }

// later closes c once the reply to the current request has gone out, or
// when the session ends: for what the reply does not depend on and the
// worker need not wait for, a stat's descriptors (a microsecond each),
// closed while the worker decodes the reply. (An interface, not a func: a
// method value would be an allocation per call.)
func (s *session) later(c closer) { s.after = append(s.after, c) }

func (s *session) runLater() {
	for i, c := range s.after {
		s.after[i] = nil
		c.close()
	}
	s.after = s.after[:0]
}

// auditBatch is the most audit lines a session holds back before writing
// them, in bytes: at most a pipe's atomic write (PIPE_BUF), so that lines
// on a shared stderr never interleave with another writer's.
const auditBatch = 4096

// auditQuiet records a decision whose only effect is what the reply shows:
// an entry of a listing or a walk, a process in proc.list, the choice
// between a read and a redacted one. Its line waits with the others of the
// request and is written with them, in one write(2), before the reply goes
// out (flushAudit): a listing of a hundred entries made a hundred writes,
// 3.4 µs each to a file. Nothing reaches the script before its lines are
// written.
func (s *session) auditQuiet(a authz.Action, r authz.Resource, d authz.Decision) {
	n := len(s.audit)
	s.audit = s.run.audit.appendDecision(s.audit, s.run, a, r, d)
	if len(s.audit) > auditBatch && n > 0 {
		s.run.audit.writeLines(s.audit[:n])
		s.audit = s.audit[:copy(s.audit, s.audit[n:])]
	}
}

// auditNow records a decision that gates an action on the host: its line,
// after those still waiting, is written before the handler goes on to act
// (in two writes when together they would pass auditBatch).
func (s *session) auditNow(a authz.Action, r authz.Resource, d authz.Decision) {
	s.auditQuiet(a, r, d)
	s.flushAudit()
}

// flushAudit writes the audit lines waiting in the session.
func (s *session) flushAudit() {
	s.run.audit.writeLines(s.audit)
	s.audit = s.audit[:0]
	if cap(s.audit) > 4*auditBatch {
		s.audit = nil // one very long line is not kept
	}
}

// errViolation marks errors that end the session and kill the worker.
var errViolation = errors.New("protocol violation")

// serve answers requests until the worker closes its end, the run's
// deadline passes, or the worker breaks the protocol. It returns nil on a
// clean close and an errViolation-wrapped error otherwise.
func (s *session) serve(deadline time.Time) error {
	defer s.flushAudit()
	defer s.runLater()
	_ = s.pc.SetReadDeadline(deadline)
	_ = s.pc.SetWriteTimeout(writeTimeout)
	for {
		pkt, files, err := s.pc.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isDeadline(err) {
				return nil
			}
			return fmt.Errorf("%w: %v", errViolation, err)
		}
		if len(files) != 0 { // maxFDs is 0, Recv refuses them; kept as a guard
			closeFiles(files...)
			return fmt.Errorf("%w: worker sent descriptors", errViolation)
		}
		// req.Body aliases the receive buffer: the handler decodes it,
		// copying what it keeps, before the next Recv.
		req := &s.req
		*req = ipc.Request{}
		if err := ipc.UnmarshalNoCopy(pkt, req); err != nil {
			return fmt.Errorf("%w: %v", errViolation, err)
		}
		resp, fd, err := s.dispatch(req)
		s.flushAudit() // before anything of the reply reaches the worker
		if errors.Is(err, errViolation) {
			return err
		}
		if err := s.reply(req, resp, fd, err); err != nil {
			return fmt.Errorf("%w: reply: %v", errViolation, err)
		}
		s.runLater()
	}
}

func isDeadline(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// dispatch runs the handler for req. A handler panic is an internal error
// that ends the session; the broker itself keeps serving.
func (s *session) dispatch(req *ipc.Request) (resp any, fd *os.File, err error) {
	h, ok := handlers[req.Op]
	if !ok {
		return nil, nil, ipc.Errorf(ipc.CodeUnsupported, "unsupported operation %d", uint16(req.Op))
	}
	s.mu.Lock()
	s.ops++
	s.mu.Unlock()
	defer func() {
		if p := recover(); p != nil {
			s.run.logf("panic serving %v: %v\n%s", req.Op, p, debug.Stack())
			if fd != nil {
				fd.Close()
			}
			resp, fd, err = nil, nil, fmt.Errorf("%w: internal error serving %v", errViolation, req.Op)
		}
	}()
	return h(s, req.Body)
}

func (s *session) reply(req *ipc.Request, body any, fd *os.File, herr error) error {
	if fd != nil {
		defer fd.Close()
	}
	r := &s.rep
	*r = ipc.Response{ID: req.ID, Poll: s.pc.Polls()}
	defer func() { *r = ipc.Response{} }() // holds no buffer past the reply
	if herr != nil {
		var e *ipc.Error
		if !errors.As(herr, &e) {
			s.run.logf("%v: %v", req.Op, herr)
			e = ipc.Errorf(ipc.CodeInternal, "internal error in %v", req.Op)
		}
		r.Code, r.Message, r.Denial = e.Code, e.Message, e.Denial
		fd = nil
	} else {
		if body == nil {
			body = ipc.Empty{}
		}
		b, err := ipc.AppendMarshal(s.body[:0], body)
		if err != nil {
			return err
		}
		s.body, r.Body = keep(b), b
		if fd != nil {
			r.FDs = 1
		}
	}
	pkt, err := ipc.AppendMarshal(s.pkt[:0], r)
	s.pkt = keep(pkt)
	if err == nil && len(pkt) > ipc.MaxPacket {
		*r = ipc.Response{ID: req.ID, Code: ipc.CodeLimit, Message: fmt.Sprintf("reply to %v exceeds %d bytes", req.Op, ipc.MaxPacket)}
		pkt, err = ipc.Marshal(r)
		fd = nil
	}
	if err != nil {
		return err
	}
	return s.pc.Send(pkt, fd)
}

// keep is the buffer to reuse for the next reply: b, unless one large
// reply (an inline read) grew it past what is worth holding for the rest
// of the run.
func keep(b []byte) []byte {
	if cap(b) > 64<<10 {
		return nil
	}
	return b
}

// authorize asks Cedar, writes the audit record and, on deny, records the
// denial for the result and returns the uniform denial error.
func (s *session) authorize(a authz.Action, r authz.Resource, ctx map[string]any) error {
	d := s.run.decide(a, r, ctx)
	s.auditNow(a, r, d)
	if d.Allow {
		return nil
	}
	den := ipc.Denial{Action: a.String(), Resource: r.String(), PolicyIDs: nonNil(d.PolicyIDs)}
	s.mu.Lock()
	s.denials = append(s.denials, den)
	s.mu.Unlock()
	return &ipc.Error{Code: ipc.CodeDenied, Message: authz.DenialMessage(s.run.principal.Name, a, r), Denial: &den}
}

func (s *session) deniedList() []ipc.Denial {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ipc.Denial(nil), s.denials...)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
