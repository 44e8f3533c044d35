package broker

import (
	"os"
	"testing"
	"time"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/broker/host"
	"github.com/rex-sh/rex/ipc"
	"golang.org/x/sys/unix"
)

// benchSession serves a real session over a real socketpair and returns
// the worker-side client, as rex-worker would hold it.
func benchSession(b *testing.B, policy string) *ipc.Client {
	b.Helper()
	ps, err := authz.LoadFiles([]authz.File{{Name: "bench.cedar", Data: []byte(policy)}})
	if err != nil {
		b.Fatal(err)
	}
	fs, err := host.New()
	if err != nil {
		b.Fatal(err)
	}
	bf, wf, err := ipc.SocketPair()
	if err != nil {
		b.Fatal(err)
	}
	// Raw blocking ends on both sides, as in production (run.go and
	// worker.Lockdown), so the figure includes the same wake-ups.
	pc := ipc.NewRawPacketConn(dupFD(b, bf), 0)
	wpc := ipc.NewRawPacketConn(dupFD(b, wf), ipc.MaxFDs)
	rn := &run{id: "bench", principal: authz.Principal{Name: "bench", UID: 1000}, policies: ps, fs: fs,
		audit: newAuditLog(nil), maxWrite: 1 << 30}
	s := &session{run: rn, pc: pc}
	done := make(chan struct{})
	go func() { _ = s.serve(time.Now().Add(time.Hour)); close(done) }()
	b.Cleanup(func() { wpc.Shutdown(); <-done; wpc.Close(); pc.Close(); fs.Close() })
	return ipc.NewClient(wpc)
}

// BenchmarkSessionStat is the per-operation cost of the broker path:
// decode, canonicalise, look up, authorise, reply (DESIGN §6, issue 7).
func BenchmarkSessionStat(b *testing.B) {
	c := benchSession(b, `permit(principal, action == file_system::Action::"stat", resource);`)
	var fi ipc.FileInfo
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Call(ipc.OpStat, &ipc.PathReq{Path: "/tmp"}, &fi); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionRead4K reads a 4 KiB file through the three-permit read.
func BenchmarkSessionRead4K(b *testing.B) {
	dir := b.TempDir()
	if err := writeFile4K(dir + "/f"); err != nil {
		b.Fatal(err)
	}
	c := benchSession(b, `permit(principal, action in [file_system::Action::"open", file_system::Action::"read"], resource);`)
	var rr ipc.ReadResp
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Call(ipc.OpRead, &ipc.ReadReq{Path: dir + "/f"}, &rr); err != nil {
			b.Fatal(err)
		}
	}
}

// dupFD takes f's descriptor over as a plain int, for a raw PacketConn.
func dupFD(b *testing.B, f *os.File) int {
	b.Helper()
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		b.Fatal(err)
	}
	f.Close()
	return fd
}

// benchHandler is a session with no socket, for timing a handler alone.
func benchHandler(b *testing.B, policy string) *session {
	b.Helper()
	ps, err := authz.LoadFiles([]authz.File{{Name: "bench.cedar", Data: []byte(policy)}})
	if err != nil {
		b.Fatal(err)
	}
	fs, err := host.New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { fs.Close() })
	return &session{run: &run{id: "bench", principal: authz.Principal{Name: "bench", UID: 1000}, policies: ps, fs: fs,
		audit: newAuditLog(nil), maxWrite: 1 << 30}}
}

// BenchmarkHandlerStat and BenchmarkHandlerRead4K time the broker's side
// of a call without the round trip: decode, look up, authorise, build the
// reply. The difference from the Session benchmarks is the IPC.
func BenchmarkHandlerStat(b *testing.B) {
	s := benchHandler(b, `permit(principal, action == file_system::Action::"stat", resource);`)
	body, err := ipc.Marshal(&ipc.PathReq{Path: "/tmp"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.opStat(body); err != nil {
			b.Fatal(err)
		}
		s.runLater()
	}
}

func BenchmarkHandlerRead4K(b *testing.B) {
	dir := b.TempDir()
	if err := writeFile4K(dir + "/f"); err != nil {
		b.Fatal(err)
	}
	s := benchHandler(b, `permit(principal, action in [file_system::Action::"open", file_system::Action::"read"], resource);`)
	body, err := ipc.Marshal(&ipc.ReadReq{Path: dir + "/f"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.opRead(body); err != nil {
			b.Fatal(err)
		}
	}
}
