package broker

import (
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/ipc"
	"golang.org/x/sys/unix"
)

// rawSession serves a session over a real socketpair whose broker end is
// raw, as in production, polling while polling says so, with audit lines
// going to audit. ask makes one request from the worker's end and returns
// the decoded reply.
func rawSession(t *testing.T, ps *authz.PolicySet, audit io.Writer, polling func() bool) (ask func(op ipc.Op, req any) ipc.Response) {
	t.Helper()
	bf, wf, err := ipc.SocketPair()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(int(bf.Fd()))
	bf.Close()
	if err != nil {
		t.Fatal(err)
	}
	pc := ipc.NewRawPacketConn(fd, 0)
	pc.SetSpin(time.Millisecond, polling)
	s := &session{run: testRun(sharedFS(t), ps, audit, nil), pc: pc}
	done := make(chan error, 1)
	go func() { done <- s.serve(time.Now().Add(time.Minute)) }()
	t.Cleanup(func() {
		wf.Close()
		if err := <-done; err != nil {
			t.Errorf("session: %v", err)
		}
		pc.Close()
	})
	var id uint32
	buf := make([]byte, ipc.MaxPacket)
	return func(op ipc.Op, req any) ipc.Response {
		t.Helper()
		id++
		body, _ := ipc.Marshal(req)
		pkt, _ := ipc.Marshal(&ipc.Request{ID: id, Op: op, Body: body})
		if _, err := unix.Write(int(wf.Fd()), pkt); err != nil {
			t.Fatal(err)
		}
		n, err := unix.Read(int(wf.Fd()), buf)
		if err != nil {
			t.Fatal(err)
		}
		var r ipc.Response
		if err := ipc.Unmarshal(buf[:n], &r); err != nil || r.ID != id {
			t.Fatalf("reply %d: %v (id %d)", id, err, r.ID)
		}
		return r
	}
}

// Every reply carries the broker's own polling condition (Response.Poll),
// granted or denied, so that the worker polls for replies only while the
// broker polls for requests.
func TestReplySaysWhetherTheBrokerPolls(t *testing.T) {
	dir := t.TempDir()
	var polling atomic.Bool
	ask := rawSession(t, loadPolicy(t, `permit(principal, action == file_system::Action::"stat", resource in file_system::Dir::"`+dir+`");`),
		nil, polling.Load)
	for _, want := range []bool{false, true, false, true} {
		polling.Store(want)
		if r := ask(ipc.OpStat, &ipc.PathReq{Path: dir}); r.Code != ipc.CodeOK || r.Poll != want {
			t.Errorf("granted stat with the broker polling=%v: code %v, poll %v", want, r.Code, r.Poll)
		}
		if r := ask(ipc.OpStat, &ipc.PathReq{Path: "/etc"}); r.Code != ipc.CodeDenied || r.Poll != want {
			t.Errorf("denied stat with the broker polling=%v: code %v, poll %v", want, r.Code, r.Poll)
		}
	}
}
