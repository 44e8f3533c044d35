package ipc

import (
	"bytes"
	"testing"
)

// decoders lists one fresh value of every message type a peer can send;
// FuzzDecode picks one by its first argument.
var decoders = []func() any{
	// Process, network and system messages (messages_sys.go).
	func() any { return &ProcListResp{} }, func() any { return &ProcKillReq{} }, func() any { return &PIDReq{} },
	func() any { return &ProcFDsResp{} }, func() any { return &LsofReq{} }, func() any { return &NetGetReq{} },
	func() any { return &NetGetResp{} }, func() any { return &NetConnectReq{} }, func() any { return &NetConnectResp{} },
	func() any { return &HostReq{} }, func() any { return &NetResolveResp{} }, func() any { return &NetInterfacesResp{} },
	func() any { return &NetConnectionsResp{} }, func() any { return &SysInfoReq{} }, func() any { return &SysInfoResp{} },
	func() any { return &DfReq{} }, func() any { return &DfResp{} }, func() any { return &DmesgReq{} },
	func() any { return &LinesResp{} }, func() any { return &SysctlReq{} }, func() any { return &SysctlResp{} },
	func() any { return &SysctlLoadResp{} }, func() any { return &SvcReq{} }, func() any { return &SvcResp{} },
	func() any { return &Hello{} }, func() any { return &HelloAck{} }, func() any { return &RunRequest{} },
	func() any { return &ErrorMsg{} }, func() any { return &Start{} }, func() any { return &WorkerResult{} },
	func() any { return &Request{} }, func() any { return &Response{} }, func() any { return &PathReq{} },
	func() any { return &ReadReq{} }, func() any { return &ReadResp{} }, func() any { return &OpenReq{} },
	func() any { return &ListReq{} }, func() any { return &ListResp{} }, func() any { return &WriteReq{} },
	func() any { return &WriteResp{} }, func() any { return &MkdirReq{} }, func() any { return &RemoveReq{} },
	func() any { return &ExistsResp{} }, func() any { return &Result{} }, func() any { return &FileInfo{} },
	func() any { return &ChmodReq{} }, func() any { return &ChownReq{} }, func() any { return &MoveReq{} },
	func() any { return &CopyReq{} }, func() any { return &ReadlinkResp{} }, func() any { return &SymlinkReq{} },
	func() any { return &SetXattrReq{} }, func() any { return &ExecuteReq{} }, func() any { return &ExecuteResp{} },
	func() any { return &WalkReq{} }, func() any { return &WalkResp{} }, func() any { return &WalkEntry{} },
}

// FuzzDecode: no input makes a decoder panic, allocate past the input's
// size class, or accept something Check refuses; what it accepts, the
// reference decoder (vmihailenco/msgpack) decodes to the same value.
// Seeds: testdata/fuzz.
func FuzzDecode(f *testing.F) {
	for i, mk := range decoders {
		b, _ := Marshal(mk())
		f.Add(byte(i), b)
	}
	f.Add(byte(6), []byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add(byte(7), append(bytes.Repeat([]byte{0x91}, 5000), 0xc0))
	f.Add(byte(8), []byte{0x82, 0xa4, 'p', 'a', 't', 'h', 0xa1, 'a', 0xa4, 'p', 'a', 't', 'h', 0xa1, 'b'})
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		mk := decoders[int(kind)%len(decoders)]
		v := mk()
		err := Unmarshal(data, v)
		if err == nil && Check(data, MaxDepth) != nil {
			t.Fatal("Unmarshal accepted what Check refuses")
		}
		if err == nil {
			// What decodes must encode again: no half-built values.
			if _, merr := Marshal(v); merr != nil {
				t.Fatalf("decoded value does not re-encode: %v", merr)
			}
			agree(t, mk, data)
		}
	})
}

// FuzzReadFrame: any byte stream yields a frame within the cap or an
// error, never a panic.
func FuzzReadFrame(f *testing.F) {
	var buf bytes.Buffer
	_ = WriteFrame(&buf, MsgHello, &Hello{Version: Version, Client: "fuzz"})
	f.Add(buf.Bytes())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 5, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			typ, body, err := ReadFrame(r, 1<<16)
			if err != nil {
				return
			}
			if len(body)+1 > 1<<16 {
				t.Fatal("frame over cap")
			}
			if typ == MsgHello {
				var h Hello
				_ = Unmarshal(body, &h)
			}
		}
	})
}
