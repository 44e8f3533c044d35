package ipc

import (
	"errors"
	"io"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func pair(t *testing.T, brokerFDs, workerFDs int) (b, w *PacketConn, rawW, rawB int) {
	t.Helper()
	bf, wf, err := SocketPair()
	if err != nil {
		t.Fatal(err)
	}
	rawB, _ = unix.Dup(int(bf.Fd()))
	rawW, _ = unix.Dup(int(wf.Fd()))
	t.Cleanup(func() { unix.Close(rawB); unix.Close(rawW) })
	if b, err = NewPacketConn(bf, brokerFDs); err != nil {
		t.Fatal(err)
	}
	if w, err = NewPacketConn(wf, workerFDs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(); w.Close() })
	return b, w, rawW, rawB
}

func countFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestPacketFDPassingBrokerToWorker(t *testing.T) {
	b, w, _, _ := pair(t, 0, MaxFDs)
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := b.Send([]byte{0xc0}, f); err != nil {
		t.Fatal(err)
	}
	pkt, files, err := w.Recv()
	if err != nil || len(pkt) != 1 || len(files) != 1 {
		t.Fatalf("recv: %v %d %d", err, len(pkt), len(files))
	}
	flags, _ := unix.FcntlInt(files[0].Fd(), unix.F_GETFD, 0)
	if flags&unix.FD_CLOEXEC == 0 {
		t.Fatal("received descriptor is not close-on-exec")
	}
	files[0].Close()
}

// P06: descriptors sent to the broker are all closed and refused, even
// 253 at a time and when they overflow the control buffer.
func TestPacketFDsToBrokerAreClosed(t *testing.T) {
	b, _, rawW, _ := pair(t, 0, MaxFDs)
	base := countFDs(t)
	for round := 0; round < 50; round++ {
		fds := make([]int, 253)
		for i := range fds {
			fds[i], _ = unix.Dup(0)
		}
		if err := unix.Sendmsg(rawW, []byte{0xc0}, unix.UnixRights(fds...), nil, 0); err != nil {
			t.Fatal(err)
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
		_, files, err := b.Recv()
		if err == nil || len(files) != 0 {
			t.Fatalf("broker accepted descriptors: %v", err)
		}
		if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrFDsFromWorker) {
			t.Fatalf("unexpected error %v", err)
		}
	}
	if got := countFDs(t); got > base+2 {
		t.Fatalf("fd leak: %d open before, %d after", base, got)
	}
	// One descriptor alone is refused as well.
	fd, _ := unix.Dup(0)
	_ = unix.Sendmsg(rawW, []byte{0xc0}, unix.UnixRights(fd), nil, 0)
	unix.Close(fd)
	if _, _, err := b.Recv(); !errors.Is(err, ErrFDsFromWorker) {
		t.Fatalf("single fd: %v", err)
	}
}

func TestPacketOversizeIsTruncationError(t *testing.T) {
	b, _, rawW, _ := pair(t, 0, MaxFDs)
	big := make([]byte, MaxPacket+100)
	if err := unix.Sendmsg(rawW, big, nil, nil, 0); err != nil {
		t.Skipf("kernel refused a %d-byte packet: %v", len(big), err)
	}
	if _, _, err := b.Recv(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("oversize packet: %v", err)
	}
	if err := b.Send(big, nil); CodeOf(err) != CodeLimit {
		t.Fatalf("Send of oversize: %v", err)
	}
}

func TestClientCall(t *testing.T) {
	b, w, _, _ := pair(t, 0, MaxFDs)
	c := NewClient(w)
	go func() {
		for i := 0; i < 2; i++ {
			pkt, _, err := b.Recv()
			if err != nil {
				return
			}
			var req Request
			if Unmarshal(pkt, &req) != nil {
				return
			}
			var resp Response
			if i == 0 {
				body, _ := Marshal(&ExistsResp{Exists: true})
				resp = Response{ID: req.ID, Body: body}
			} else {
				resp = Response{ID: req.ID, Code: CodeDenied, Message: "Permission denied: x", Denial: &Denial{Action: "a", Resource: "r"}}
			}
			out, _ := Marshal(&resp)
			_ = b.Send(out, nil)
		}
	}()
	var er ExistsResp
	if _, err := c.Call(OpExists, &PathReq{Path: "/x"}, &er); err != nil || !er.Exists {
		t.Fatalf("call: %v %+v", err, er)
	}
	_, err := c.Call(OpExists, &PathReq{Path: "/y"}, &er)
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeDenied || e.Denial == nil || e.Denial.Action != "a" {
		t.Fatalf("denial not carried: %v", err)
	}
	big := &WriteReq{Path: "/x", Data: make([]byte, MaxPacket)}
	if _, err := c.Call(OpWrite, big, nil); CodeOf(err) != CodeLimit {
		t.Fatalf("oversize call: %v", err)
	}
}

// The worker's raw end: blocking syscalls on the same descriptor number,
// descriptors received close-on-exec, EOF when the broker closes.
func TestRawPacketConn(t *testing.T) {
	bf, wf, err := SocketPair()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewPacketConn(bf, 0)
	if err != nil {
		t.Fatal(err)
	}
	wfd, _ := unix.Dup(int(wf.Fd()))
	wf.Close()
	w := NewRawPacketConn(wfd, MaxFDs)
	defer w.Close()
	f, _ := os.Open("/proc/self/status")
	defer f.Close()
	if err := b.Send([]byte{0x01}, f); err != nil {
		t.Fatal(err)
	}
	pkt, files, err := w.Recv()
	if err != nil || len(pkt) != 1 || pkt[0] != 1 || len(files) != 1 {
		t.Fatalf("raw recv: %v %v %d", err, pkt, len(files))
	}
	flags, _ := unix.FcntlInt(files[0].Fd(), unix.F_GETFD, 0)
	if flags&unix.FD_CLOEXEC == 0 {
		t.Fatal("descriptor not close-on-exec")
	}
	files[0].Close()
	if err := w.Send([]byte{0x02}, nil); err != nil {
		t.Fatal(err)
	}
	if pkt, _, err := b.Recv(); err != nil || pkt[0] != 2 {
		t.Fatalf("broker recv: %v", err)
	}
	b.Close()
	if _, _, err := w.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after close: %v, want EOF", err)
	}
}

// rawPair is a raw end taking up to maxFDs descriptors and its peer, a
// plain *os.File, both closed when the test ends.
func rawPair(t *testing.T, maxFDs int) (*PacketConn, *os.File) {
	t.Helper()
	a, b, err := SocketPair()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	fd, err := unix.Dup(int(a.Fd()))
	a.Close()
	if err != nil {
		t.Fatal(err)
	}
	p := NewRawPacketConn(fd, maxFDs)
	t.Cleanup(func() { p.Close() })
	return p, b
}

// A raw end honours deadlines (SO_RCVTIMEO) and Shutdown wakes a reader
// blocked in recvmsg.
func TestRawDeadlineAndShutdown(t *testing.T) {
	p, _ := rawPair(t, 0)
	if err := p.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _, err := p.Recv()
	if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("recv past deadline: %v after %v", err, time.Since(start))
	}
	_ = p.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() { _, _, err := p.Recv(); done <- err }()
	time.Sleep(20 * time.Millisecond)
	if err := p.Shutdown(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("blocked recv after shutdown: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("shutdown did not wake the blocked reader")
	}
}

// A raw end with SetSpin polls only after a short wait: its first Recv,
// and any after a long wait, block at once (no CPU burnt), while one after
// a short wait polls for up to the spin time, and still gets its packet,
// descriptors included, when it comes later.
func TestRawRecvSpin(t *testing.T) {
	runtime.LockOSThread() // RUSAGE_THREAD must be this goroutine's
	defer runtime.UnlockOSThread()
	p, b := rawPair(t, 1)
	const spin = 60 * time.Millisecond
	polling := true
	p.SetSpin(spin, func() bool { return polling })
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	send := func(after time.Duration, withFD bool) {
		var oob []byte
		if withFD {
			oob = unix.UnixRights(int(f.Fd()))
		}
		time.Sleep(after)
		if err := unix.Sendmsg(int(b.Fd()), []byte{1}, oob, nil, 0); err != nil {
			t.Error(err)
		}
	}
	// recv waits for a packet sent after the given delay (0: already
	// there) and returns the CPU time the wait took on this thread.
	recv := func(after time.Duration, withFD bool) time.Duration {
		t.Helper()
		if after == 0 {
			send(0, withFD)
		} else {
			go send(after, withFD)
		}
		c0 := threadCPU()
		pkt, files, err := p.Recv()
		used := threadCPU() - c0
		if err != nil || len(pkt) != 1 || len(files) != map[bool]int{false: 0, true: 1}[withFD] {
			t.Fatalf("recv: %v %v %d files", err, pkt, len(files))
		}
		for _, f := range files {
			f.Close()
		}
		return used
	}
	if c := recv(150*time.Millisecond, false); c > spin/6 {
		t.Errorf("first Recv burnt %v: it must block at once", c)
	}
	if c := recv(150*time.Millisecond, false); c > spin/6 {
		t.Errorf("Recv after a long wait burnt %v: it must block at once", c)
	}
	recv(0, false) // a short wait
	if c := recv(150*time.Millisecond, true); c < spin/6 {
		t.Errorf("Recv after a short wait burnt only %v: it must poll for up to %v", c, spin)
	}
	if c := recv(150*time.Millisecond, false); c > spin/6 {
		t.Errorf("Recv after a long wait burnt %v: it must block at once", c)
	}
	// Nor does it poll when its condition says no, even after a short wait.
	polling = false
	recv(0, false)
	if c := recv(150*time.Millisecond, false); c > spin/6 {
		t.Errorf("Recv with polling off burnt %v: it must block at once", c)
	}
	b.Close()
	recv0 := func() error { _, _, err := p.Recv(); return err }
	if err := recv0(); !errors.Is(err, io.EOF) {
		t.Fatalf("after close: %v, want EOF", err)
	}
}

// threadCPU is the CPU time of the calling thread so far: a test that
// measures it locks its goroutine to the thread first.
func threadCPU() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_THREAD, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// A Client polls for a reply only while the broker's last reply said the
// broker polls too (Response.Poll), and only after a short wait.
func TestClientPollsWithBroker(t *testing.T) {
	runtime.LockOSThread() // RUSAGE_THREAD must be this goroutine's
	defer runtime.UnlockOSThread()
	p, b := rawPair(t, MaxFDs)
	const spin = 60 * time.Millisecond
	c := NewClient(p)
	c.PollWithBroker(spin)
	type answer struct {
		after time.Duration
		poll  bool
	}
	answers := make(chan answer)
	brokerDone := make(chan struct{})
	go func() { // the broker: answer each request as told
		defer close(brokerDone)
		buf := make([]byte, MaxPacket)
		for a := range answers {
			n, err := unix.Read(int(b.Fd()), buf)
			if err != nil {
				t.Error(err)
				return
			}
			var req Request
			if err := Unmarshal(buf[:n], &req); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(a.after)
			pkt, _ := Marshal(&Response{ID: req.ID, Code: CodeOK, Poll: a.poll})
			if _, err := unix.Write(int(b.Fd()), pkt); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	// call makes one call answered after the given delay with the given
	// hint, and returns the CPU time the call took on this thread.
	call := func(after time.Duration, poll bool) time.Duration {
		t.Helper()
		answers <- answer{after, poll}
		c0 := threadCPU()
		if _, err := c.Call(OpStat, &PathReq{Path: "/"}, nil); err != nil {
			t.Fatalf("call: %v", err)
		}
		return threadCPU() - c0
	}
	call(0, true) // a first wait always blocks
	call(0, true) // a short wait, and the broker polls
	if used := call(150*time.Millisecond, false); used < spin/6 {
		t.Errorf("the broker polls and the last wait was short, yet the call burnt only %v: it must poll for up to %v", used, spin)
	}
	call(0, false) // a short wait, but the broker no longer polls
	if used := call(150*time.Millisecond, true); used > spin/6 {
		t.Errorf("the broker's last reply said it does not poll, yet the call burnt %v: it must sleep at once", used)
	}
	call(0, true)
	if used := call(150*time.Millisecond, true); used < spin/6 {
		t.Errorf("the broker polls again, yet the call burnt only %v", used)
	}
	if used := call(150*time.Millisecond, true); used > spin/6 {
		t.Errorf("after a wait longer than the poll the call burnt %v: it must sleep at once", used)
	}
	close(answers)
	<-brokerDone
}

// A polling Recv yields to Go's scheduler once every yieldEvery, however
// fast its packets come, so that sysmon never takes the poller for a
// runaway goroutine (see recvmsg); a Recv that does not poll never yields.
func TestRawRecvYields(t *testing.T) {
	var yields int
	yield = func() { yields++ }
	t.Cleanup(func() { yield = runtime.Gosched })
	p, b := rawPair(t, 1)
	peer := int(b.Fd())
	recv := func() {
		t.Helper()
		if _, err := unix.Write(peer, []byte{1}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := p.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	recv()
	if yields != 0 {
		t.Fatalf("an end that does not poll yielded %d times", yields)
	}
	polling := false
	p.SetSpin(time.Millisecond, func() bool { return polling })
	for range 3 {
		recv()
	}
	if yields != 0 {
		t.Fatalf("an end whose condition says not to poll yielded %d times", yields)
	}
	polling = true
	start := time.Now()
	for time.Since(start) < 3*yieldEvery+yieldEvery/2 {
		recv()
	}
	if yields < 3 || yields > 4 {
		t.Errorf("%d yields in %v of polling Recvs; want one per %v", yields, time.Since(start), yieldEvery)
	}
}

// A raw end receives without allocating: a polling Recv makes many tries
// per packet, and each would otherwise allocate the peer's address.
func TestRawRecvAllocatesNothing(t *testing.T) {
	p, b := rawPair(t, 1)
	p.SetSpin(time.Millisecond, nil)
	peer := int(b.Fd())
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := unix.Write(peer, []byte{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		if pkt, _, err := p.Recv(); err != nil || len(pkt) != 3 {
			t.Fatalf("recv: %v %v", pkt, err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per packet", allocs)
	}
}
