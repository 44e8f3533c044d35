package ipc

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// Client is the worker's side of the socketpair. Calls are serialised: one
// request is in flight at a time, which keeps the broker's per-session work
// bounded without a queue.
type Client struct {
	mu   sync.Mutex
	pc   *PacketConn
	next uint32
	body []byte // encoding buffers, reused from call to call
	pkt  []byte
	poll bool // the last reply's Response.Poll
	// The envelopes, reused from call to call: through an interface to
	// the codec, a local one would be allocated for every call.
	req  Request
	resp Response
}

// NewClient wraps the worker's end of the socketpair.
func NewClient(pc *PacketConn) *Client { return &Client{pc: pc} }

// PollWithBroker makes each Call poll for its reply for up to d
// (PacketConn.SetSpin) while the broker's last reply said it polls too
// (Response.Poll), and sleep at once otherwise.
//
// Why only then: a worker cannot see how busy the machine is, and its poll
// takes a core the broker may need (eight concurrent loops of fs.stat on
// two cores took 1.3–1.5 times as long with every end polling). The broker
// polls only while it serves a single run, and says so in every reply.
// With both ends polling, neither pays the scheduler's wake-up (5–10 µs a
// side on this VM-hosted hardware), and a loop of fs.stat ran 10–20 %
// faster per call (bench/RESULTS.md, seventh session). SetSpin's own rule
// still applies: after a wait longer than d (a slow operation), the next
// Recv sleeps at once.
func (c *Client) PollWithBroker(d time.Duration) {
	c.pc.SetSpin(d, func() bool { return c.poll })
}

// Call sends op with req and decodes the reply body into resp (which may be
// nil for Empty replies). A reply with a non-OK code comes back as *Error.
// When the broker passes a descriptor it is returned; the caller owns it.
func (c *Client) Call(op Op, req, resp any) (*os.File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.trim()
	var err error
	if c.body, err = AppendMarshal(c.body[:0], req); err != nil {
		return nil, err
	}
	c.next++
	id := c.next
	c.req = Request{ID: id, Op: op, Body: c.body}
	c.pkt, err = AppendMarshal(c.pkt[:0], &c.req)
	c.req = Request{} // holds no buffer past the call (see trim)
	if err != nil {
		return nil, err
	}
	if len(c.pkt) > MaxPacket {
		return nil, Errorf(CodeLimit, "request of %d bytes exceeds the %d-byte cap of one call", len(c.pkt), MaxPacket)
	}
	if err := c.pc.Send(c.pkt, nil); err != nil {
		return nil, Errorf(CodeProtocol, "broker unreachable: %v", err)
	}
	raw, files, err := c.pc.Recv()
	if err != nil {
		return nil, Errorf(CodeProtocol, "broker unreachable: %v", err)
	}
	// r.Body aliases the receive buffer: it is decoded into resp, which
	// copies what it keeps, before the next Recv.
	r := &c.resp
	*r = Response{}
	defer func() { *r = Response{} }() // holds nothing of the receive buffer past the call
	if err := UnmarshalNoCopy(raw, r); err != nil || r.ID != id || r.FDs != len(files) {
		closeAll(files)
		c.poll = false
		return nil, Errorf(CodeProtocol, "bad reply from broker")
	}
	// Read by the next Call's Recv, on this goroutine, under c.mu.
	c.poll = r.Poll
	if r.Code != CodeOK {
		closeAll(files)
		return nil, &Error{Code: r.Code, Message: r.Message, Denial: r.Denial}
	}
	if resp != nil {
		if err := Unmarshal(r.Body, resp); err != nil {
			closeAll(files)
			return nil, Errorf(CodeProtocol, "bad reply body for %v: %v", op, err)
		}
	}
	if len(files) == 1 {
		return files[0], nil
	}
	return nil, nil
}

// trim drops encoding buffers that one large request (a write) grew, so
// that they do not stay pinned for the rest of the run.
func (c *Client) trim() {
	if cap(c.body) > maxPooledBuffer {
		c.body = nil
	}
	if cap(c.pkt) > maxPooledBuffer {
		c.pkt = nil
	}
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// String shows an op and its code for logs.
func (r *Response) String() string { return fmt.Sprintf("resp{id=%d code=%v}", r.ID, r.Code) }
