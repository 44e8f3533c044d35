package broker

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/broker/host"
	"github.com/rex-sh/rex/internal/testutil"
	"github.com/rex-sh/rex/ipc"
	"golang.org/x/sys/unix"
)

// The raw-peer harness (SECURITY-TESTS P01–P09): the test holds the worker
// end of a real SOCK_SEQPACKET socketpair and writes arbitrary bytes and
// control data to a real session, served by the real dispatch table over a
// real Cedar policy set and host.FS. After every attack the invariants of
// SECURITY-TESTS hold: the session ended (or answered with a typed error),
// no panic was logged, goroutines and descriptors are back to the baseline,
// every denial has an audit record and the sentinel is untouched.

var (
	hostFSOnce sync.Once
	hostFS     *host.FS
	hostFSErr  error
)

// sharedFS is opened once, like the daemon's, so that its descriptors are
// part of every baseline.
func sharedFS(t testing.TB) *host.FS {
	t.Helper()
	hostFSOnce.Do(func() {
		hostFS, hostFSErr = host.New()
		// Warm up Go's network poller (epoll and eventfd descriptors live
		// for the rest of the process) so they are not counted as a leak.
		if b, w, err := ipc.SocketPair(); err == nil {
			w.Close()
			if pc, err := ipc.NewPacketConn(b, 0); err == nil {
				_ = pc.SetReadDeadline(time.Now().Add(time.Millisecond))
				_, _, _ = pc.Recv()
				pc.Close()
			}
		}
	})
	if hostFSErr != nil {
		t.Fatalf("host.New: %v", hostFSErr)
	}
	return hostFS
}

// testRun is a run as Runner.Run builds it, with the built-in mandatory
// deny list, for principal alice.
func testRun(fs *host.FS, ps *authz.PolicySet, audit, log io.Writer) *run {
	return &run{
		id: "rawpeer", principal: authz.Principal{Name: "alice", UID: 4242}, policies: ps, fs: fs,
		audit: newAuditLog(audit), log: log, maxWrite: 1 << 20,
		mandatory: newMandatoryList(nil, nil), redact: loadRedactor(""),
	}
}

type rawPeer struct {
	t        *testing.T
	dir      string // granted to the principal
	sentinel string // outside the grant; must never change
	sess     *session
	fd       int // the worker end
	wf       *os.File
	done     chan struct{} // closed when serve returned, after endErr is set
	endErr   error
	audit    *testutil.SyncBuffer
	log      *testutil.SyncBuffer
}

const sentinelText = "sentinel: the worker must never read or change this\n"

// rawPolicy grants every file action under dir and nothing else.
func rawPolicy(dir string) string {
	return fmt.Sprintf(`@id("rawpeer-grant")
permit (
    principal,
    action in [file_system::Action::"open", file_system::Action::"read", file_system::Action::"write",
               file_system::Action::"create", file_system::Action::"delete", file_system::Action::"stat"],
    resource in file_system::Dir::%q
);
`, dir)
}

// newRawPeer starts a session over a fresh socketpair, serving until
// deadline, and registers the invariant checks for the end of the test.
func newRawPeer(t *testing.T, deadline time.Duration) *rawPeer {
	t.Helper()
	fs := sharedFS(t)
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sentinel := filepath.Join(root, "secret")
	if err := os.WriteFile(sentinel, []byte(sentinelText), 0o600); err != nil {
		t.Fatal(err)
	}
	ps, err := authz.LoadFiles([]authz.File{{Name: "rawpeer.cedar", Data: []byte(rawPolicy(dir))}})
	if err != nil {
		t.Fatalf("policy: %v", err)
	}

	baseFDs, baseG := testutil.OpenFDs(t), runtime.NumGoroutine()

	b, w, err := ipc.SocketPair()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := ipc.NewPacketConn(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{t: t, dir: dir, sentinel: sentinel, wf: w, fd: int(w.Fd()), done: make(chan struct{}),
		audit: &testutil.SyncBuffer{}, log: &testutil.SyncBuffer{}}
	p.sess = &session{run: testRun(fs, ps, p.audit, p.log), pc: pc}
	go func() {
		p.endErr = p.sess.serve(time.Now().Add(deadline))
		close(p.done)
	}()

	t.Cleanup(func() {
		// As Runner.run does once the worker is gone: close the broker end,
		// collect the session.
		w.Close()
		pc.Close()
		p.end(5 * time.Second)
		p.checkInvariants(baseFDs, baseG)
	})
	return p
}

// end waits up to timeout for serve to return, and returns its error.
func (p *rawPeer) end(timeout time.Duration) (error, bool) {
	select {
	case <-p.done:
		return p.endErr, true
	default:
	}
	select {
	case <-p.done:
		return p.endErr, true
	case <-time.After(timeout):
		return nil, false
	}
}

func (p *rawPeer) checkInvariants(baseFDs, baseG int) {
	t := p.t
	t.Helper()
	if _, ok := p.end(0); !ok {
		t.Error("session still serving after its socket was closed")
	}
	if l := p.log.String(); strings.Contains(l, "panic") {
		t.Errorf("broker logged a panic:\n%s", l)
	}
	var fds, g int
	for i := 0; i < 200; i++ {
		fds, g = testutil.OpenFDs(t), runtime.NumGoroutine()
		if fds <= baseFDs && g <= baseG {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if fds > baseFDs {
		t.Errorf("descriptor leak: %d open, baseline %d", fds, baseFDs)
	}
	if g > baseG {
		t.Errorf("goroutine leak: %d running, baseline %d", g, baseG)
	}
	// Every denial the session recorded has its audit line, and no audit
	// line claims a denial the session did not record.
	var audited []string
	sc := bufio.NewScanner(strings.NewReader(p.audit.String()))
	for sc.Scan() {
		var rec AuditRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("audit line %q: %v", sc.Text(), err)
			continue
		}
		if rec.Principal != "alice" {
			t.Errorf("audit record for principal %q, want alice (identity comes from the broker only)", rec.Principal)
		}
		if rec.Decision == "deny" {
			audited = append(audited, rec.Action+" "+rec.Resource)
		}
	}
	var denied []string
	for _, d := range p.sess.deniedList() {
		denied = append(denied, d.Action+" "+d.Resource)
	}
	slices.Sort(audited)
	slices.Sort(denied)
	if !slices.Equal(audited, denied) {
		t.Errorf("denials %q but audit records %q", denied, audited)
	}
	if b, err := os.ReadFile(p.sentinel); err != nil || string(b) != sentinelText {
		t.Errorf("sentinel changed: %q, %v", b, err)
	}
}

// sendRaw writes one packet with optional control data from the worker end.
func (p *rawPeer) sendRaw(b, oob []byte) error {
	return unix.Sendmsg(p.fd, b, oob, nil, 0)
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := ipc.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// request encodes a well-formed request for op with body.
func (p *rawPeer) request(id uint32, op ipc.Op, body any) []byte {
	var bb []byte
	switch v := body.(type) {
	case []byte:
		bb = v
	case nil:
	default:
		bb = mustMarshal(p.t, v)
	}
	return mustMarshal(p.t, &ipc.Request{ID: id, Op: op, Body: bb})
}

// recv reads one reply, closing any descriptor that came with it.
func (p *rawPeer) recv(timeout time.Duration) (*ipc.Response, error) {
	pfd := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd, int(timeout/time.Millisecond))
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, errors.New("no reply")
	}
	buf := make([]byte, ipc.MaxPacket+1)
	oob := make([]byte, unix.CmsgSpace(4*4))
	nb, oobn, _, _, err := unix.Recvmsg(p.fd, buf, oob, 0)
	if err != nil {
		return nil, err
	}
	if oobn > 0 {
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for _, m := range msgs {
			fds, _ := unix.ParseUnixRights(&m)
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
	}
	if nb == 0 {
		return nil, errors.New("EOF")
	}
	var r ipc.Response
	if err := ipc.Unmarshal(buf[:nb], &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// call sends one request and reads its reply.
func (p *rawPeer) call(id uint32, op ipc.Op, body any) *ipc.Response {
	p.t.Helper()
	if err := p.sendRaw(p.request(id, op, body), nil); err != nil {
		p.t.Fatalf("send: %v", err)
	}
	r, err := p.recv(5 * time.Second)
	if err != nil {
		p.t.Fatalf("reply to op %d: %v", op, err)
	}
	if r.ID != id {
		p.t.Fatalf("reply id %d, want %d", r.ID, id)
	}
	return r
}

// alive shows the session still serves: a granted stat succeeds.
func (p *rawPeer) alive() {
	p.t.Helper()
	if r := p.call(77, ipc.OpStat, &ipc.PathReq{Path: filepath.Join(p.dir, "hello.txt")}); r.Code != ipc.CodeOK {
		p.t.Fatalf("session no longer serves a granted stat: %v %s", r.Code, r.Message)
	}
}

// wantKilled asserts the session ended as a protocol violation within 1 s
// (SECURITY-TESTS KILL-SESSION) and returns the reason.
func (p *rawPeer) wantKilled() string {
	p.t.Helper()
	err, ok := p.end(time.Second)
	if !ok {
		p.t.Fatal("session still serving 1 s after the violation")
	}
	if !errors.Is(err, errViolation) {
		p.t.Fatalf("session ended with %v, want a protocol violation", err)
	}
	return err.Error()
}

// allocDuring returns the bytes the process allocated while f ran.
func allocDuring(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

func TestP01_AbsurdLengths(t *testing.T) {
	var obs []string
	t.Run("empty packet", func(t *testing.T) {
		// Go's poller reports a zero-length SOCK_SEQPACKET read as EOF, so
		// an empty packet ends the session like a close (the run then
		// waits for the worker's result or its deadline), not as a logged
		// violation.
		p := newRawPeer(t, time.Minute)
		if err := p.sendRaw(nil, nil); err != nil {
			t.Fatal(err)
		}
		err, ok := p.end(time.Second)
		if !ok {
			t.Fatal("session still serving 1 s after an empty packet")
		}
		obs = append(obs, fmt.Sprintf("empty packet: session ended as on EOF (%v)", err))
	})
	for _, c := range []struct {
		name string
		pkt  []byte
	}{
		{"cap+1", bytes.Repeat([]byte{0xc0}, ipc.MaxPacket+1)},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newRawPeer(t, time.Minute)
			var why string
			alloc := allocDuring(func() {
				if err := p.sendRaw(c.pkt, nil); err != nil {
					t.Fatalf("send: %v", err)
				}
				why = p.wantKilled()
			})
			if alloc > 1<<20 {
				t.Errorf("broker allocated %d bytes for the packet", alloc)
			}
			obs = append(obs, fmt.Sprintf("%s: killed (%s), %d B allocated", c.name, why, alloc))
		})
	}
	t.Run("4MiB packet", func(t *testing.T) {
		p := newRawPeer(t, time.Minute)
		err := p.sendRaw(make([]byte, 4<<20), nil)
		if err == nil {
			p.wantKilled()
			obs = append(obs, "4 MiB: killed")
			return
		}
		p.alive()
		obs = append(obs, fmt.Sprintf("4 MiB: kernel refused the send (%v), session unaffected", err))
	})
	// The worker's other channel is a length-prefixed stream (its result on
	// stdout): a header claiming 4 GiB, cap+1 or 0 bytes.
	for _, n := range []uint32{0xFFFFFFFF, ipc.MaxFrame + 1, 0} {
		hdr := []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), byte(ipc.MsgWorkerResult)}
		var err error
		alloc := allocDuring(func() {
			var wr ipc.WorkerResult
			err = ipc.ReadFrameAs(bytes.NewReader(append(hdr, 0xc0)), ipc.MsgWorkerResult, &wr)
		})
		if err == nil || alloc > 1<<20 {
			t.Errorf("stream frame of %d bytes: err %v, %d bytes allocated", n, err, alloc)
		}
		obs = append(obs, fmt.Sprintf("stream header %#x: %v", n, err))
	}
	testutil.Hostile(t, "P01", "packet of 0 bytes, cap+1, 4 MiB; stream header 0xFFFFFFFF, cap+1, 0",
		"KILL-SESSION before any allocation > cap", strings.Join(obs, "; "))
}

func TestP02_AllocationBombs(t *testing.T) {
	bombs := map[string][]byte{
		"array32": {0xdd, 0xff, 0xff, 0xff, 0xff},
		"map32":   {0xdf, 0xff, 0xff, 0xff, 0xff},
		"str32":   {0xdb, 0xff, 0xff, 0xff, 0xff},
		"bin32":   {0xc6, 0xff, 0xff, 0xff, 0xff},
	}
	var obs []string
	for _, name := range []string{"array32", "map32", "str32", "bin32"} {
		bomb := bombs[name]
		t.Run(name, func(t *testing.T) {
			// As the whole packet, and as the body field of a request map.
			inField := append([]byte{0x83, 0xa2, 'i', 'd', 0x01, 0xa2, 'o', 'p', 0x01, 0xa4, 'b', 'o', 'd', 'y'}, bomb...)
			for _, pkt := range [][]byte{bomb, inField} {
				p := newRawPeer(t, time.Minute)
				alloc := allocDuring(func() {
					if err := p.sendRaw(pkt, nil); err != nil {
						t.Fatal(err)
					}
					p.wantKilled()
				})
				if alloc > 1<<20 {
					t.Errorf("%x: %d bytes allocated for a 4 GiB declaration", pkt, alloc)
				}
			}
			// Inside a well-formed request's body: the handler's decoder
			// refuses it with a typed error and the session goes on.
			p := newRawPeer(t, time.Minute)
			r := p.call(1, ipc.OpStat, bomb)
			if r.Code != ipc.CodeInvalid {
				t.Errorf("bomb in body: code %v %q, want invalid", r.Code, r.Message)
			}
			p.alive()
			obs = append(obs, name+": killed; in body: "+r.Code.String())
		})
	}
	testutil.Hostile(t, "P02", "msgpack array32/map32/str32/bin32 declaring 4 GiB",
		"decode error, KILL-SESSION, no allocation ∝ declared length", strings.Join(obs, "; "))
}

func TestP03_DeepNesting(t *testing.T) {
	arrays := append(bytes.Repeat([]byte{0x91}, 100000), 0xc0)
	maps := append(bytes.Repeat([]byte{0x81, 0xa1, 'a'}, 40000), 0xc0)
	var obs []string
	for name, pkt := range map[string][]byte{"100000 nested arrays": arrays, "40000 nested maps": maps} {
		p := newRawPeer(t, time.Minute)
		if err := p.sendRaw(pkt, nil); err != nil {
			t.Fatal(err)
		}
		obs = append(obs, name+": "+p.wantKilled())
	}
	p := newRawPeer(t, time.Minute)
	deep := append(bytes.Repeat([]byte{0x91}, 60000), 0xc0)
	if r := p.call(3, ipc.OpStat, deep); r.Code != ipc.CodeInvalid {
		t.Errorf("deep body: %v %q, want invalid", r.Code, r.Message)
	}
	p.alive()
	testutil.Hostile(t, "P03", "100 000 nested arrays / 40 000 nested maps",
		"depth-limit error; broker not killed by stack overflow", strings.Join(obs, "; ")+"; in body: typed invalid")
}

func TestP04_TypeConfusion(t *testing.T) {
	var obs []string
	t.Run("typed", func(t *testing.T) {
		p := newRawPeer(t, time.Minute)
		for _, op := range []ipc.Op{0, 9999, 65535} {
			if r := p.call(10, op, &ipc.PathReq{Path: p.dir}); r.Code != ipc.CodeUnsupported {
				t.Errorf("op %d: %v, want unsupported", op, r.Code)
			}
		}
		traversal := filepath.Join(p.dir, "a\x00/../../secret")
		for _, c := range []struct {
			name string
			op   ipc.Op
			body any
		}{
			{"NUL path stat", ipc.OpStat, &ipc.PathReq{Path: traversal}},
			{"NUL path read", ipc.OpRead, &ipc.ReadReq{Path: traversal}},
			{"NUL path write", ipc.OpWrite, &ipc.WriteReq{Path: traversal, Data: []byte("x")}},
			{"NUL path remove", ipc.OpRemove, &ipc.RemoveReq{Path: traversal}},
			{"relative path", ipc.OpRead, &ipc.ReadReq{Path: "../secret"}},
			{"invalid UTF-8 escape", ipc.OpWrite, &ipc.WriteReq{Path: filepath.Join(p.dir, "\xff/../../secret"), Data: []byte("x")}},
			{"int where string", ipc.OpStat, map[string]any{"path": 12345}},
			{"unknown field", ipc.OpStat, map[string]any{"path": p.dir, "uid": 0}},
			{"duplicate key", ipc.OpStat, []byte{0x82, 0xa4, 'p', 'a', 't', 'h', 0xa1, '/', 0xa4, 'p', 'a', 't', 'h', 0xa1, '/'}},
			{"junk body", ipc.OpStat, []byte{0xc1, 0xc1, 0xc1}},
		} {
			r := p.call(11, c.op, c.body)
			if r.Code == ipc.CodeOK || r.Code == ipc.CodeInternal {
				t.Errorf("%s: %v %q, want a typed refusal", c.name, r.Code, r.Message)
			}
			obs = append(obs, c.name+": "+r.Code.String())
		}
		ents, _ := os.ReadDir(p.dir)
		if len(ents) != 1 {
			t.Errorf("refused requests left files behind: %v", ents)
		}
		// A name that is not UTF-8 is a valid Linux name: inside the grant
		// it may be written, and it lands exactly there.
		odd := filepath.Join(p.dir, "\xff\xfe")
		r := p.call(13, ipc.OpWrite, &ipc.WriteReq{Path: odd, Data: []byte("x")})
		if _, err := os.Stat(odd); (r.Code == ipc.CodeOK) != (err == nil) {
			t.Errorf("invalid UTF-8 name inside the grant: %v, file %v", r.Code, err)
		}
		obs = append(obs, "invalid UTF-8 name inside grant: "+r.Code.String())
		ents, _ = os.ReadDir(filepath.Dir(p.dir))
		if len(ents) != 2 {
			t.Errorf("files appeared next to the grant: %v", ents)
		}
		p.alive()
	})
	// Confusion in the envelope either ends the session or, where the
	// decoder converts the value (msgpack integers narrow into the field's
	// type, an array fills a struct in field order), reaches dispatch and
	// gets a typed refusal; never success.
	for name, pkt := range map[string][]byte{
		"op as string":      mustMarshal(t, map[string]any{"id": 1, "op": "stat", "body": []byte{0xc0}}),
		"unknown field":     mustMarshal(t, map[string]any{"id": 1, "op": 1, "body": []byte{0xc0}, "principal": "root"}),
		"duplicate key":     {0x83, 0xa2, 'i', 'd', 0x01, 0xa2, 'i', 'd', 0x02, 0xa2, 'o', 'p', 0x01},
		"negative id":       mustMarshal(t, map[string]any{"id": -1, "op": 1, "body": []byte{0xc0}}),
		"huge op":           mustMarshal(t, map[string]any{"id": 1, "op": uint64(1) << 40, "body": []byte{0xc0}}),
		"trailing bytes":    append(mustMarshal(t, &ipc.Request{ID: 1, Op: ipc.OpStat}), 0xc0),
		"reserved byte c1":  {0xc1},
		"extension type":    {0xd4, 0x01, 0x00},
		"not a map":         {0x93, 0x01, 0x01, 0xc0},
		"string body field": mustMarshal(t, map[string]any{"id": 1, "op": 1, "body": "text"}),
	} {
		t.Run(name, func(t *testing.T) {
			p := newRawPeer(t, time.Minute)
			if err := p.sendRaw(pkt, nil); err != nil {
				t.Fatal(err)
			}
			if _, ended := p.end(200 * time.Millisecond); ended {
				obs = append(obs, "envelope "+name+": "+p.wantKilled())
				return
			}
			if r, err := p.recv(time.Second); err == nil {
				if r.Code == ipc.CodeOK || r.Code == ipc.CodeInternal {
					t.Fatalf("reply %v %q, want a refusal", r.Code, r.Message)
				}
				p.alive()
				obs = append(obs, "envelope "+name+": "+r.Code.String())
				return
			}
			p.wantKilled()
			obs = append(obs, "envelope "+name+": killed")
		})
	}
	t.Run("mode bits", func(t *testing.T) {
		// A root broker creating files must not hand out set-id bits.
		p := newRawPeer(t, time.Minute)
		name := filepath.Join(p.dir, "setid")
		r := p.call(12, ipc.OpWrite, &ipc.WriteReq{Path: name, Data: []byte("#!/bin/sh\n"), Mode: 0o7777})
		st, err := os.Stat(name)
		switch {
		case r.Code == ipc.CodeOK && err != nil:
			t.Fatalf("write said ok but %v", err)
		case err == nil && st.Mode()&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0:
			t.Errorf("file created with mode %v", st.Mode())
		}
		obs = append(obs, fmt.Sprintf("write mode 07777: %v", r.Code))
		if err == nil {
			obs[len(obs)-1] += fmt.Sprintf(" (%v)", st.Mode())
		}
	})
	testutil.Hostile(t, "P04", "unknown ops, wrong types, unknown/duplicate fields, NUL and invalid UTF-8 paths, junk",
		"typed error or KILL-SESSION; no panic; no side effects", strings.Join(obs, "; "))
}

func TestP05_TruncationAndHalfClose(t *testing.T) {
	var obs []string
	t.Run("truncated", func(t *testing.T) {
		p := newRawPeer(t, time.Minute)
		full := p.request(1, ipc.OpStat, &ipc.PathReq{Path: p.dir})
		if err := p.sendRaw(full[:len(full)-3], nil); err != nil {
			t.Fatal(err)
		}
		obs = append(obs, "truncated request: "+p.wantKilled())
	})
	t.Run("half-close", func(t *testing.T) {
		p := newRawPeer(t, time.Minute)
		if err := p.sendRaw(p.request(5, ipc.OpStat, &ipc.PathReq{Path: p.dir}), nil); err != nil {
			t.Fatal(err)
		}
		if err := unix.Shutdown(p.fd, unix.SHUT_WR); err != nil {
			t.Fatal(err)
		}
		r, err := p.recv(5 * time.Second)
		if err != nil || r.ID != 5 || r.Code != ipc.CodeOK {
			t.Fatalf("request before half-close: %+v %v", r, err)
		}
		err, ok := p.end(time.Second)
		if !ok || err != nil {
			t.Fatalf("after half-close: ended %v, err %v; want a clean end", ok, err)
		}
		obs = append(obs, "half-close: in-flight request answered, session ended cleanly")
	})
	t.Run("abrupt close", func(t *testing.T) {
		p := newRawPeer(t, time.Minute)
		for i := 0; i < 100; i++ {
			if err := p.sendRaw(p.request(uint32(i), ipc.OpRead, &ipc.ReadReq{Path: filepath.Join(p.dir, "hello.txt")}), nil); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		p.wf.Close()
		if _, ok := p.end(time.Second); !ok {
			t.Fatal("session alive 1 s after the worker closed with 100 requests in flight")
		}
		obs = append(obs, fmt.Sprintf("close with 100 in flight: ended in %v", time.Since(start).Round(time.Millisecond)))
	})
	testutil.Hostile(t, "P05", "truncated request; half-close mid-request; close with 100 requests in flight",
		"session cleaned up within 1 s", strings.Join(obs, "; "))
}

// devNulls opens n descriptors to smuggle.
func devNulls(t *testing.T, n int) []int {
	fds := make([]int, n)
	for i := range fds {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds[i] = fd
	}
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	return fds
}

func TestP06_FDSmuggling(t *testing.T) {
	var obs []string
	t.Run("253 fds", func(t *testing.T) {
		fds := devNulls(t, 253)
		base := testutil.OpenFDs(t)
		rounds := testutil.Scale(100, 10000)
		for i := 0; i < rounds; i++ {
			func() {
				p := newRawPeer(t, time.Minute)
				if err := p.sendRaw(p.request(1, ipc.OpStat, &ipc.PathReq{Path: p.dir}), unix.UnixRights(fds...)); err != nil {
					t.Fatal(err)
				}
				p.wantKilled()
				p.wf.Close()
			}()
		}
		// Every session is over (wantKilled) and the broker closed all it
		// received; only the per-subtest cleanups remain, which hold none.
		if n := testutil.OpenFDs(t); n > base+2*rounds {
			t.Errorf("%d descriptors open after %d rounds, baseline %d", n, rounds, base)
		}
		obs = append(obs, fmt.Sprintf("253 fds × %d requests: every session killed, no fd kept", rounds))
	})
	t.Run("1 fd", func(t *testing.T) {
		p := newRawPeer(t, time.Minute)
		fds := devNulls(t, 1)
		if err := p.sendRaw(p.request(1, ipc.OpStat, &ipc.PathReq{Path: p.dir}), unix.UnixRights(fds...)); err != nil {
			t.Fatal(err)
		}
		obs = append(obs, "1 fd: "+p.wantKilled())
	})
	t.Run("SCM_CREDENTIALS", func(t *testing.T) {
		p := newRawPeer(t, time.Minute)
		cred := unix.UnixCredentials(&unix.Ucred{Pid: 1, Uid: 0, Gid: 0})
		err := p.sendRaw(p.request(9, ipc.OpStat, &ipc.PathReq{Path: p.sentinel}), cred)
		if err != nil {
			// Only a privileged sender may forge; then send its own.
			cred = unix.UnixCredentials(&unix.Ucred{Pid: int32(os.Getpid()), Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())})
			if err := p.sendRaw(p.request(9, ipc.OpStat, &ipc.PathReq{Path: p.sentinel}), cred); err != nil {
				t.Fatal(err)
			}
		}
		// The broker never enables SO_PASSCRED, so the credentials are
		// dropped by the kernel; if they arrived they would end the session.
		// Either way the identity stays the broker's own: the sentinel,
		// outside alice's grant, stays denied.
		r, rerr := p.recv(2 * time.Second)
		switch {
		case rerr == nil && r.Code == ipc.CodeDenied:
			obs = append(obs, "SCM_CREDENTIALS pid 1 uid 0: ignored, request still denied as alice")
		case rerr != nil:
			obs = append(obs, "SCM_CREDENTIALS: "+p.wantKilled())
		default:
			t.Fatalf("forged credentials: reply %v %q", r.Code, r.Message)
		}
	})
	testutil.Hostile(t, "P06", "253 fds (SCM_RIGHTS, forcing MSG_CTRUNC) on every request; 1 fd; SCM_CREDENTIALS forged as pid 1/uid 0",
		"every fd closed; KILL-SESSION; fd count constant", strings.Join(obs, "; "))
}

func TestP07_ForgedAndReplayedIDs(t *testing.T) {
	p := newRawPeer(t, time.Minute)
	hello := filepath.Join(p.dir, "hello.txt")
	for _, id := range []uint32{0, 0xFFFFFFFF, 7, 7} {
		if r := p.call(id, ipc.OpStat, &ipc.PathReq{Path: hello}); r.Code != ipc.CodeOK {
			t.Errorf("id %d: %v", id, r.Code)
		}
	}
	// A replayed denied request is denied (and audited) every time: no
	// request id, order or repetition carries authority.
	for i := 0; i < 3; i++ {
		if r := p.call(8, ipc.OpRead, &ipc.ReadReq{Path: p.sentinel}); r.Code != ipc.CodeDenied {
			t.Errorf("replay %d of a denied read: %v", i, r.Code)
		}
	}
	if n := len(p.sess.deniedList()); n < 3 {
		t.Errorf("%d denials recorded for 3 denied requests", n)
	}
	testutil.Hostile(t, "P07", "ids 0, 2^32-1, replayed ids; replayed denied request",
		"DENY each time; never operates on an unrelated object",
		"ids echoed, requests independent; replayed denial denied and audited 3×; the protocol has no handles or handshake on the socketpair (fds go broker→worker only), so handle forgery has no target")
}

func TestP08_Slowloris(t *testing.T) {
	var obs []string
	t.Run("worker never reads", func(t *testing.T) {
		p := newRawPeer(t, time.Minute)
		big := filepath.Join(p.dir, "big")
		if err := os.WriteFile(big, bytes.Repeat([]byte("x"), ipc.MaxInline-1024), 0o644); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		// Replies of ~63 KiB pile up in the socket buffers until Send
		// blocks; the write deadline must end the session.
		go func() {
			for i := 0; i < 400; i++ {
				if p.sendRaw(p.request(uint32(i), ipc.OpRead, &ipc.ReadReq{Path: big}), nil) != nil {
					return
				}
			}
		}()
		err, ok := p.end(writeTimeout + 5*time.Second)
		if !ok || !errors.Is(err, errViolation) {
			t.Fatalf("ended %v with %v; want a violation by the write deadline", ok, err)
		}
		obs = append(obs, fmt.Sprintf("unread replies: killed after %v (%v)", time.Since(start).Round(100*time.Millisecond), err))
	})
	t.Run("worker silent", func(t *testing.T) {
		p := newRawPeer(t, 300*time.Millisecond)
		if err, ok := p.end(2 * time.Second); !ok || err != nil {
			t.Fatalf("silent worker: ended %v, %v; want the run deadline to end the session", ok, err)
		}
		obs = append(obs, "silent worker: session ends at the run deadline (the run's timer kills the worker)")
	})
	testutil.Hostile(t, "P08", "worker never reads replies; worker never sends",
		"write / read deadline ⇒ KILL-SESSION; goroutines back to baseline",
		strings.Join(obs, "; ")+"; packets are atomic on SOCK_SEQPACKET, so a byte-at-a-time header cannot exist")
}

func TestP09_Flood(t *testing.T) {
	n := testutil.Scale(20000, 100000)
	flood := newRawPeer(t, 5*time.Minute)
	other := newRawPeer(t, 5*time.Minute)
	hello := filepath.Join(flood.dir, "hello.txt")
	pkt := flood.request(1, ipc.OpStat, &ipc.PathReq{Path: hello})

	got := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			r, err := flood.recv(10 * time.Second)
			if err != nil {
				got <- fmt.Errorf("reply %d: %v", i, err)
				return
			}
			if r.Code != ipc.CodeOK {
				got <- fmt.Errorf("reply %d: %v", i, r.Code)
				return
			}
		}
		got <- nil
	}()
	start := time.Now()
	sendErr := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if err := flood.sendRaw(pkt, nil); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- nil
	}()
	// Meanwhile another session's latency.
	var lat []time.Duration
	for i := 0; len(lat) < 200; i++ {
		t0 := time.Now()
		other.alive()
		lat = append(lat, time.Since(t0))
	}
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	slices.Sort(lat)
	p99 := lat[len(lat)*99/100]
	if p99 > 250*time.Millisecond {
		t.Errorf("p99 latency of another session during the flood: %v", p99)
	}
	testutil.Hostile(t, "P09", fmt.Sprintf("%d pipelined requests on one session", n),
		"bounded queue; other sessions unaffected",
		fmt.Sprintf("served in order at %.0f req/s; one request at a time per session, queue bounded by the socket buffer; other session p99 %v",
			float64(n)/elapsed.Seconds(), p99.Round(10*time.Microsecond)))
}
