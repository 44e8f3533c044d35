package broker

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/ipc"
	"golang.org/x/sys/unix"
)

// Every reply carries the broker's own polling condition (Response.Poll),
// granted or denied, so that the worker polls for replies only while the
// broker polls for requests.
func TestReplySaysWhetherTheBrokerPolls(t *testing.T) {
	dir := t.TempDir()
	ps, err := authz.LoadFiles([]authz.File{{Name: "p.cedar", Data: []byte(
		`permit(principal, action == file_system::Action::"stat", resource in file_system::Dir::"` + dir + `");`)}})
	if err != nil {
		t.Fatal(err)
	}
	bf, wf, err := ipc.SocketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer wf.Close()
	fd, err := unix.Dup(int(bf.Fd()))
	bf.Close()
	if err != nil {
		t.Fatal(err)
	}
	pc := ipc.NewRawPacketConn(fd, 0)
	var polling atomic.Bool
	pc.SetSpin(time.Millisecond, polling.Load)
	s := &session{run: testRun(sharedFS(t), ps, nil, nil), pc: pc}
	done := make(chan error, 1)
	go func() { done <- s.serve(time.Now().Add(time.Minute)) }()

	var id uint32
	ask := func(path string) ipc.Response {
		t.Helper()
		id++
		body, _ := ipc.Marshal(&ipc.PathReq{Path: path})
		pkt, _ := ipc.Marshal(&ipc.Request{ID: id, Op: ipc.OpStat, Body: body})
		if _, err := unix.Write(int(wf.Fd()), pkt); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, ipc.MaxPacket)
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
	for _, want := range []bool{false, true, false, true} {
		polling.Store(want)
		if r := ask(dir); r.Code != ipc.CodeOK || r.Poll != want {
			t.Errorf("granted stat with the broker polling=%v: code %v, poll %v", want, r.Code, r.Poll)
		}
		if r := ask("/etc"); r.Code != ipc.CodeDenied || r.Poll != want {
			t.Errorf("denied stat with the broker polling=%v: code %v, poll %v", want, r.Code, r.Poll)
		}
	}
	wf.Close()
	if err := <-done; err != nil {
		t.Fatalf("session: %v", err)
	}
	pc.Close()
}
