package ipc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrFDsFromWorker is returned by Recv on the broker side when descriptors
// arrived: the worker never sends any, so this ends the session.
var ErrFDsFromWorker = errors.New("worker sent file descriptors")

// ErrTruncated means a packet or its control data did not fit.
var ErrTruncated = errors.New("packet or control data truncated")

// SocketPair makes the worker↔broker SOCK_SEQPACKET pair, close-on-exec,
// with buffers sized for MaxPacket. The caller clears close-on-exec on the
// worker's end only by passing it in exec.Cmd.ExtraFiles.
func SocketPair() (broker, worker *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	for _, fd := range fds {
		// Best effort: the defaults already fit MaxPacket on stock kernels.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4*MaxPacket)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4*MaxPacket)
	}
	return os.NewFile(uintptr(fds[0]), "rex-broker-end"), os.NewFile(uintptr(fds[1]), "rex-worker-end"), nil
}

// PacketConn is one end of the socketpair: one message per packet. Both
// ends in production are raw blocking syscalls on the descriptor: a packet
// wakes the blocked thread directly, without a trip through Go's poller
// (which costs a round trip a fifth of its time), and the locked-down
// worker holds no epoll or eventfd descriptor. Deadlines on a raw end are
// the kernel's SO_RCVTIMEO/SO_SNDTIMEO. NewPacketConn gives a poller-backed
// end for tests that want Go's deadline semantics.
type PacketConn struct {
	c     *net.UnixConn // nil in raw mode
	raw   int
	wto   time.Duration // SetWriteTimeout, for poller-backed ends
	wmu   sync.Mutex
	rbuf  []byte
	pool  *[]byte // rbuf's entry in rbufs, for a raw end
	oob   []byte
	maxFD int

	spin     time.Duration // SetSpin; 0: every Recv blocks at once
	spinWhen func() bool   // SetSpin's condition; nil: always
	lastWait time.Duration // how long the previous Recv waited
	yielded  time.Time     // when a polling Recv last yielded (see recvmsg)

	// The raw end's recvmsg header, over rbuf and oob (see recvRaw).
	msg unix.Msghdr
	iov unix.Iovec
}

// rbufs recycles the receive buffers of raw ends from run to run. A packet
// can be MaxPacket long, so each is 128 KiB: allocated (and cleared) anew
// for every worker, it cost the broker the clearing and then a
// copy-on-write fault per page after every worker it forked.
var rbufs = sync.Pool{New: func() any {
	b := make([]byte, MaxPacket+1)
	return &b
}}

// NewRawPacketConn uses fd (which it takes over) with blocking sendmsg and
// recvmsg and no deadlines. fd stays the same number.
func NewRawPacketConn(fd int, maxFDs int) *PacketConn {
	b := rbufs.Get().(*[]byte)
	return &PacketConn{raw: fd, rbuf: *b, pool: b,
		oob: make([]byte, unix.CmsgSpace(4*(maxFDs+1))), maxFD: maxFDs}
}

// NewPacketConn wraps f (which it takes over) as a PacketConn that accepts
// up to maxFDs descriptors per received packet: 0 on the broker side.
func NewPacketConn(f *os.File, maxFDs int) (*PacketConn, error) {
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("not a unix socket")
	}
	// Room for one descriptor more than allowed, so that a packet with too
	// many arrives with its extra descriptors visible (and closed) rather
	// than silently dropped by the kernel.
	oob := unix.CmsgSpace(4 * (maxFDs + 1))
	return &PacketConn{c: uc, raw: -1, rbuf: make([]byte, MaxPacket+1), oob: make([]byte, oob), maxFD: maxFDs}, nil
}

// Close closes the connection. It must be the last call: what Recv
// returned is no longer valid after it (a raw end's buffer goes back to a
// pool).
func (p *PacketConn) Close() error {
	if p.c == nil {
		err := unix.Close(p.raw)
		if p.pool != nil {
			rbufs.Put(p.pool)
			p.pool, p.rbuf = nil, nil
		}
		return err
	}
	return p.c.Close()
}

// Shutdown wakes a Recv blocked on this end (it returns EOF) and makes
// Sends fail, without releasing the descriptor: Close it only once no call
// is in flight, or its number could be reused under a blocked reader.
func (p *PacketConn) Shutdown() error {
	if p.c == nil {
		return unix.Shutdown(p.raw, unix.SHUT_RDWR)
	}
	return p.c.Close()
}

// SetReadDeadline and SetWriteDeadline bound the following Recvs or Sends.
// On a raw end each call is bounded by the time left when the deadline was
// set (the kernel's timeouts are relative); the zero time removes the bound.
func (p *PacketConn) SetReadDeadline(t time.Time) error {
	if p.c == nil {
		return setTimeout(p.raw, unix.SO_RCVTIMEO, t)
	}
	return p.c.SetReadDeadline(t)
}

func (p *PacketConn) SetWriteDeadline(t time.Time) error {
	if p.c == nil {
		return setTimeout(p.raw, unix.SO_SNDTIMEO, t)
	}
	return p.c.SetWriteDeadline(t)
}

// SetWriteTimeout bounds every following Send by d (0: no bound). On a
// raw end it is one setsockopt for the life of the connection, not one per
// reply.
func (p *PacketConn) SetWriteTimeout(d time.Duration) error {
	if p.c == nil {
		tv := unix.NsecToTimeval(d.Nanoseconds())
		return unix.SetsockoptTimeval(p.raw, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	}
	p.wto = d
	return nil
}

func setTimeout(fd, opt int, t time.Time) error {
	var tv unix.Timeval
	if !t.IsZero() {
		d := time.Until(t)
		if d < time.Microsecond {
			d = time.Microsecond // zero would mean "no timeout"
		}
		tv = unix.NsecToTimeval(d.Nanoseconds())
	}
	return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv)
}

// Send writes one packet, with fd (if not nil) in SCM_RIGHTS.
func (p *PacketConn) Send(b []byte, fd *os.File) error {
	if len(b) > MaxPacket {
		return Errorf(CodeLimit, "message of %d bytes exceeds the %d-byte packet cap", len(b), MaxPacket)
	}
	var oob []byte
	if fd != nil {
		oob = unix.UnixRights(int(fd.Fd()))
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.c == nil {
		for {
			err := unix.Sendmsg(p.raw, b, oob, nil, 0)
			if err == unix.EAGAIN {
				return os.ErrDeadlineExceeded // SO_SNDTIMEO expired
			}
			if err != unix.EINTR {
				return err
			}
		}
	}
	if p.wto > 0 {
		_ = p.c.SetWriteDeadline(time.Now().Add(p.wto))
	}
	_, _, err := p.c.WriteMsgUnix(b, oob, nil)
	return err
}

// DefaultSpin is how long a raw end polls for a packet before it sleeps:
// the broker's for a request, the worker's for a reply
// (Client.PollWithBroker). The broker answers a stat in 25–40 µs and a
// script's loop comes back with its next call in 10–30 µs, but the tail
// (a collection, a slow open) reaches past 100 µs: at 50 µs the polls
// missed often enough to gain 4 %, at 200 µs a loop of fs.stat ran 5–17 %
// faster (bench/RESULTS.md, sixth session). At 1 ms the 99th percentile
// of a call fell from ~250 to ~80 µs, and the mean by 10–20 %: a poll that
// gave up paid a sleep and a wake-up on top of the 200 µs it had spun
// (ninth session).
const DefaultSpin = time.Millisecond

// yieldEvery is how often a polling Recv yields to Go's scheduler: well
// inside the 10 ms after which sysmon preempts a goroutine that has not
// been rescheduled.
const yieldEvery = 5 * time.Millisecond

var yield = runtime.Gosched // a variable for TestRawRecvYields

// SetSpin makes each Recv on a raw end poll for its packet, with
// non-blocking recvmsg, for up to d before it blocks, while when (if not
// nil) says the machine has room for it; d = 0 turns this off.
//
// Why: a blocked reader is woken through the scheduler, which on this
// VM-hosted hardware costs the sender and the sleeper 5–10 µs each, half a
// round trip's time. A reader still polling when the packet arrives is not
// asleep, so neither pays. The poll burns the reader's CPU instead, and is
// made only when it is likely to pay: when the previous Recv waited no
// longer than d. A peer that is busy for longer (a script computing, a
// worker waiting for its script) makes the next Recv block at once, so an
// idle end never polls. That alone does not keep a loaded machine from
// polling, where the poller takes the CPU its peer needs: eight
// concurrent loops of fs.stat through one daemon on two cores took 1.3–1.5
// times as long with every end polling. So each end polls only while when
// holds: the broker's is "this is the only run", and the worker's (which
// cannot see the machine's load) is "the broker's last reply said it
// polls" (Response.Poll, from Polls).
func (p *PacketConn) SetSpin(d time.Duration, when func() bool) {
	p.spin, p.spinWhen = d, when
	p.lastWait = d + 1 // the first wait (for a script, a first call) blocks
}

// Polls reports whether SetSpin's condition holds now: the broker puts it
// in each Response (Poll) so that the worker polls only alongside it.
func (p *PacketConn) Polls() bool {
	return p.c == nil && p.spin > 0 && (p.spinWhen == nil || p.spinWhen())
}

func (p *PacketConn) recvmsg() (n, oobn, flags int, err error) {
	if p.c != nil {
		n, oobn, flags, _, err = p.c.ReadMsgUnix(p.rbuf, p.oob)
		return n, oobn, flags, err
	}
	if p.spin > 0 {
		start := time.Now()
		defer func() { p.lastWait = time.Since(start) }()
		if p.lastWait <= p.spin && (p.spinWhen == nil || p.spinWhen()) {
			// A goroutine that only polls and makes short system calls
			// is never rescheduled, so after 10 ms Go's sysmon takes it
			// for a runaway: it preempts it, takes its P away inside
			// whichever system call it is in, and hands the P to
			// another thread, and sysmon itself then wakes every 20 µs
			// for a while. On two cores, each of those wake-ups
			// preempts one side of the loop: they were most of the
			// calls slower than 50 µs. Yielding now and then restarts
			// that clock at the cost of one wake-up.
			if start.Sub(p.yielded) > yieldEvery {
				yield()
				p.yielded = start
			}
			for {
				n, oobn, flags, err = p.recvRaw(unix.MSG_CMSG_CLOEXEC | unix.MSG_DONTWAIT)
				switch {
				case err == nil:
					return n, oobn, flags, eofOnEmpty(n, oobn)
				case err != unix.EAGAIN && err != unix.EINTR:
					return n, oobn, flags, err
				}
				if time.Since(start) > p.spin {
					break
				}
			}
		}
	}
	for {
		n, oobn, flags, err = p.recvRaw(unix.MSG_CMSG_CLOEXEC)
		if err == unix.EAGAIN {
			err = os.ErrDeadlineExceeded // SO_RCVTIMEO expired
		}
		if err != unix.EINTR {
			break
		}
	}
	if err == nil {
		err = eofOnEmpty(n, oobn)
	}
	return n, oobn, flags, err
}

// recvRaw is recvmsg(2) on the raw end into rbuf and oob, through a header
// kept in the PacketConn. unix.Recvmsg allocates the sender's address on
// every call (a socketpair's peer has one, unnamed), which a polling Recv
// would pay at every try; this allocates nothing.
func (p *PacketConn) recvRaw(flags int) (n, oobn, recvflags int, err error) {
	p.iov.Base = &p.rbuf[0]
	p.iov.SetLen(len(p.rbuf))
	p.msg = unix.Msghdr{Iov: &p.iov, Control: &p.oob[0]}
	p.msg.SetIovlen(1)
	p.msg.SetControllen(len(p.oob))
	r, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(p.raw), uintptr(unsafe.Pointer(&p.msg)), uintptr(flags))
	if e != 0 {
		return 0, 0, 0, e
	}
	return int(r), int(p.msg.Controllen), int(p.msg.Flags), nil
}

// eofOnEmpty is io.EOF for an empty read: a seqpacket socket reads 0 bytes
// once its peer has closed.
func eofOnEmpty(n, oobn int) error {
	if n == 0 && oobn == 0 {
		return io.EOF
	}
	return nil
}

// Recv reads one packet. The returned slice is valid until the next Recv.
// Every descriptor that arrived is either returned (at most maxFDs) or
// closed; more than maxFDs, or any truncation, is an error.
func (p *PacketConn) Recv() ([]byte, []*os.File, error) {
	n, oobn, flags, err := p.recvmsg()
	if err != nil {
		return nil, nil, err
	}
	fds, perr := parseRights(p.oob[:oobn])
	files := make([]*os.File, 0, len(fds))
	for _, fd := range fds {
		files = append(files, os.NewFile(uintptr(fd), "rex-passed-fd"))
	}
	fail := func(e error) ([]byte, []*os.File, error) {
		for _, f := range files {
			f.Close()
		}
		return nil, nil, e
	}
	switch {
	case perr != nil:
		return fail(perr)
	case flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || n > MaxPacket:
		return fail(ErrTruncated)
	case len(files) > p.maxFD:
		if p.maxFD == 0 {
			return fail(ErrFDsFromWorker)
		}
		return fail(fmt.Errorf("%w: %d descriptors, at most %d", ErrMalformed, len(files), p.maxFD))
	case n == 0:
		return fail(fmt.Errorf("%w: empty packet", ErrMalformed))
	}
	return p.rbuf[:n], files, nil
}

// parseRights returns every descriptor in SCM_RIGHTS messages of oob. Other
// control messages are an error (none is ever enabled on this socket).
func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("%w: control data: %v", ErrMalformed, err)
	}
	var fds []int
	var bad error
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS {
			bad = fmt.Errorf("%w: unexpected control message %d/%d", ErrMalformed, m.Header.Level, m.Header.Type)
			continue
		}
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			bad = fmt.Errorf("%w: rights: %v", ErrMalformed, err)
			continue
		}
		fds = append(fds, got...)
	}
	if bad != nil {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, bad
	}
	return fds, nil
}
