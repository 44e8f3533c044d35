package broker

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/internal/testutil"
	"github.com/rex-sh/rex/ipc"
	"golang.org/x/sys/unix"
)

// The dispatcher fuzz targets (SECURITY-TESTS P10): random requests go
// through the real dispatch table, the real Cedar policy set and host.FS
// over a temporary directory, which is the only thing the policy grants.
// Invariants: no handler panics; a reply always encodes within the packet
// cap (or the session's reply path turns it into a limit error); a
// descriptor handed back is a regular file inside the grant, opened with
// no more than the granted mode; nothing outside the grant changes. Seed
// corpora live in testdata/fuzz; `go test` runs them as plain tests.

type fuzzHost struct {
	dir      string // granted
	sentinel string
	ps       *authz.PolicySet
}

// placeholder in fuzzed paths stands for the granted directory, so that
// seeds reach the handlers' allowed paths whatever the temp dir is named.
const placeholder = "@D"

func newFuzzHost(f *testing.F) *fuzzHost {
	f.Helper()
	root := f.TempDir()
	h := &fuzzHost{dir: filepath.Join(root, "data"), sentinel: filepath.Join(root, "secret")}
	if err := os.Mkdir(h.dir, 0o755); err != nil {
		f.Fatal(err)
	}
	for _, err := range []error{
		os.WriteFile(filepath.Join(h.dir, "hello.txt"), []byte("hello\n"), 0o644),
		os.WriteFile(filepath.Join(h.dir, "big"), make([]byte, ipc.MaxInline+1), 0o644),
		os.Mkdir(filepath.Join(h.dir, "sub"), 0o755),
		os.Symlink(h.sentinel, filepath.Join(h.dir, "link")),
		os.WriteFile(h.sentinel, []byte(sentinelText), 0o600),
	} {
		if err != nil {
			f.Fatal(err)
		}
	}
	var err error
	h.ps, err = authz.LoadFiles([]authz.File{{Name: "fuzz.cedar", Data: []byte(rawPolicy(h.dir))}})
	if err != nil {
		f.Fatal(err)
	}
	return h
}

func (h *fuzzHost) check(t *testing.T, s *session, log *testutil.SyncBuffer, req *ipc.Request) {
	t.Helper()
	resp, fd, err := s.dispatch(req)
	defer s.runLater()
	if fd != nil {
		defer fd.Close()
	}
	if strings.Contains(log.String(), "panic") || (err != nil && errors.Is(err, errViolation)) {
		t.Fatalf("op %d: handler failed the session: %v\n%s", req.Op, err, log.String())
	}
	if err != nil {
		var e *ipc.Error
		if !errors.As(err, &e) {
			// Untyped errors become CodeInternal on the wire; they are
			// allowed (a host failure) but must not be a panic.
			return
		}
		if e.Code == ipc.CodeOK {
			t.Fatalf("op %d: error with code ok: %v", req.Op, err)
		}
		return
	}
	if resp != nil {
		if _, err := ipc.Marshal(resp); err != nil {
			t.Fatalf("op %d: reply does not encode: %v", req.Op, err)
		}
	}
	if fd != nil {
		var st unix.Stat_t
		if err := unix.Fstat(int(fd.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			t.Fatalf("op %d: descriptor is not a regular file (mode %o, %v)", req.Op, st.Mode, err)
		}
		target, _ := os.Readlink("/proc/self/fd/" + itoa(int(fd.Fd())))
		if !strings.HasPrefix(target, h.dir+"/") {
			t.Fatalf("op %d: descriptor on %s, outside the grant %s", req.Op, target, h.dir)
		}
		fl, _ := unix.FcntlInt(fd.Fd(), unix.F_GETFL, 0)
		if fl&unix.O_PATH != 0 {
			t.Fatalf("op %d: O_PATH descriptor", req.Op)
		}
	}
	if b, err := os.ReadFile(h.sentinel); err != nil || string(b) != sentinelText {
		t.Fatalf("op %d: sentinel changed: %q %v", req.Op, b, err)
	}
}

func itoa(n int) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}

func (h *fuzzHost) session() (*session, *testutil.SyncBuffer) {
	log := &testutil.SyncBuffer{}
	return &session{run: testRun(hostFS, h.ps, nil, log)}, log
}

// fileOps are the ops whose handlers only touch files; the fuzzer's
// structured target stays among them (the others are reached, denied, by
// FuzzDispatchPacket).
var fileOps = []ipc.Op{ipc.OpStat, ipc.OpRead, ipc.OpOpen, ipc.OpList, ipc.OpWrite, ipc.OpMkdir, ipc.OpRemove, ipc.OpExists}

// FuzzDispatchOps builds a well-formed body for a file op from fuzzed
// fields, so that the fuzzer explores the handlers rather than the decoder.
func FuzzDispatchOps(f *testing.F) {
	sharedFS(f)
	h := newFuzzHost(f)
	for i := range fileOps {
		for _, p := range []string{"@D/hello.txt", "@D/big", "@D/sub", "@D/link", "@D/new", "@D/../secret", "/", "@D/sub/../hello.txt", "@D/a\x00b"} {
			f.Add(uint8(i), p, uint8(0), []byte("x"))
		}
	}
	f.Add(uint8(2), "@D/new", uint8(0b110), []byte(nil))
	f.Add(uint8(4), "@D/w", uint8(0b1000), []byte("data"))
	f.Fuzz(func(t *testing.T, opIdx uint8, path string, flags uint8, data []byte) {
		if len(path) > 8192 || len(data) > 1<<16 {
			return
		}
		p := strings.ReplaceAll(path, placeholder, h.dir)
		b := func(n uint) bool { return flags&(1<<n) != 0 }
		op := fileOps[int(opIdx)%len(fileOps)]
		var body any
		switch op {
		case ipc.OpStat, ipc.OpExists:
			body = &ipc.PathReq{Path: p, Follow: b(0)}
		case ipc.OpRead:
			body = &ipc.ReadReq{Path: p, Follow: b(0)}
		case ipc.OpOpen:
			body = &ipc.OpenReq{Path: p, Follow: b(0), Write: b(1), Create: b(2), Append: b(3)}
		case ipc.OpList:
			body = &ipc.ListReq{Path: p, All: b(0)}
		case ipc.OpWrite:
			body = &ipc.WriteReq{Path: p, Data: data, Append: b(0), Mode: uint32(flags) << 3}
		case ipc.OpMkdir:
			body = &ipc.MkdirReq{Path: p, Parents: b(0), Mode: uint32(flags) << 3}
		case ipc.OpRemove:
			// Never remove the fixtures wholesale: they seed other runs.
			if strings.TrimRight(p, "/") == h.dir || b(1) {
				return
			}
			body = &ipc.RemoveReq{Path: p, Force: b(2)}
		}
		raw, err := ipc.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		s, log := h.session()
		h.check(t, s, log, &ipc.Request{ID: 1, Op: op, Body: raw})
	})
}

// FuzzDispatchPacket feeds whole packets through the path serve takes:
// Unmarshal into a Request (refused packets end the session: fine), then
// dispatch over the whole table, with the policy granting only file
// actions under the temp dir.
func FuzzDispatchPacket(f *testing.F) {
	sharedFS(f)
	h := newFuzzHost(f)
	add := func(op ipc.Op, body any) {
		b, _ := ipc.Marshal(body)
		pkt, _ := ipc.Marshal(&ipc.Request{ID: 7, Op: op, Body: b})
		f.Add(pkt)
	}
	in := func(name string) string { return filepath.Join(h.dir, name) }
	add(ipc.OpStat, &ipc.PathReq{Path: in("hello.txt")})
	add(ipc.OpRead, &ipc.ReadReq{Path: in("link"), Follow: true})
	add(ipc.OpRead, &ipc.ReadReq{Path: in("big")})
	add(ipc.OpOpen, &ipc.OpenReq{Path: in("hello.txt"), Write: true})
	add(ipc.OpList, &ipc.ListReq{Path: h.dir})
	add(ipc.OpWrite, &ipc.WriteReq{Path: in("x"), Data: []byte("x")})
	add(ipc.OpRemove, &ipc.RemoveReq{Path: in("x")})
	for _, op := range []ipc.Op{9, 10, 11, 12, 13, 14, 15, 16, 18, 100, 102, 103, 200, 201, 202, 203, 204, 300, 301, 302, 303, 305, 9999} {
		add(op, map[string]any{"path": in("hello.txt"), "pid": 1, "url": "http://127.0.0.1/", "host": "localhost"})
	}
	// The static attack packets (P01–P07) are in testdata/fuzz.
	f.Cleanup(func() {
		testutil.Hostile(f, "P10", "coverage-guided fuzzing: frame reader, every decoder (ipc), dispatcher over the real table (broker), policy loading (authz), --args-file (rex-exec)",
			"no panic, no allocation > cap, fds only regular files inside the grant, sentinel untouched",
			"seed corpora (P01–P07 packets and valid traffic) ran as tests here; `make fuzz FUZZTIME=…` fuzzes every target")
	})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if len(pkt) > ipc.MaxPacket {
			return
		}
		var req ipc.Request
		if err := ipc.Unmarshal(pkt, &req); err != nil {
			return
		}
		if req.Op == ipc.OpExecute || req.Op == ipc.OpProcKill || req.Op == ipc.OpSysctlSet {
			// Denied by the policy all the same; kept out so that a policy
			// bug found here can never act on this machine.
			return
		}
		s, log := h.session()
		h.check(t, s, log, &req)
	})
}
