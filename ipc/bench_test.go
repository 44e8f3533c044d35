package ipc

import (
	"bytes"
	"testing"
)

// BenchmarkRequestRoundTrip is one worker request as it crosses the wire:
// encode the body and envelope, then Check and decode both.
func BenchmarkRequestRoundTrip(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		body, _ := Marshal(&PathReq{Path: "/var/log/syslog"})
		pkt, _ := Marshal(&Request{ID: 7, Op: OpStat, Body: body})
		var r Request
		if err := Unmarshal(pkt, &r); err != nil {
			b.Fatal(err)
		}
		var p PathReq
		if err := Unmarshal(r.Body, &p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFileInfoReply encodes and decodes a stat reply.
func BenchmarkFileInfoReply(b *testing.B) {
	fi := &FileInfo{Name: "syslog", Path: "/var/log/syslog", Kind: "file", Size: 1 << 20, Mode: 0o640,
		UID: 0, GID: 4, Owner: "root", Group: "adm", MTime: "2026-11-25T20:00:00Z", Nlink: 1}
	b.ReportAllocs()
	for b.Loop() {
		body, _ := Marshal(fi)
		pkt, _ := Marshal(&Response{ID: 7, Body: body})
		var r Response
		if err := Unmarshal(pkt, &r); err != nil {
			b.Fatal(err)
		}
		var out FileInfo
		if err := Unmarshal(r.Body, &out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFrame writes and reads one stream frame (client↔broker).
func BenchmarkFrame(b *testing.B) {
	req := &RunRequest{Script: bytes.Repeat([]byte("x := 1\n"), 100), ScriptName: "s.risor", Args: []byte(`{"a":1}`), TimeoutMs: 30000}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := WriteFrame(&buf, MsgRun, req); err != nil {
			b.Fatal(err)
		}
		var out RunRequest
		if err := ReadFrameAs(&buf, MsgRun, &out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeStatReply is the broker's side of a stat reply: the body
// and the envelope appended to reused buffers, as a session does.
func BenchmarkEncodeStatReply(b *testing.B) {
	fi := &FileInfo{Name: "syslog", Path: "/var/log/syslog", Kind: "file", Size: 1 << 20, Mode: 0o640,
		UID: 0, GID: 4, Owner: "root", Group: "adm", MTime: "2026-11-25T20:00:00Z", Nlink: 1}
	var body, pkt []byte
	b.ReportAllocs()
	for b.Loop() {
		body, _ = AppendMarshal(body[:0], fi)
		pkt, _ = AppendMarshal(pkt[:0], &Response{ID: 7, Body: body})
	}
}
