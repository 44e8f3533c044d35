package sdk

import (
	"context"
	"os"
	"testing"

	"github.com/risor-io/risor"
	ros "github.com/risor-io/risor/os"

	"github.com/rex-sh/rex/ipc"
)

// statReply is a stat reply as the broker sends it.
var statReply = ipc.FileInfo{Name: "syslog", Path: "/var/log/syslog", Kind: "file", Size: 1 << 20, Mode: 0o640,
	UID: 0, GID: 4, Owner: "root", Group: "adm", MTime: "2026-11-25T20:00:00Z", Nlink: 1}

// BenchmarkStatMap is the map fs.stat hands the script.
func BenchmarkStatMap(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = statMap(statReply)
	}
}

// wireCaller does the worker's share of a call without the socket: it
// encodes the request as ipc.Client does and decodes a recorded reply.
type wireCaller struct {
	body, pkt, reply []byte
}

func (w *wireCaller) Call(op ipc.Op, req, resp any) (*os.File, error) {
	var err error
	if w.body, err = ipc.AppendMarshal(w.body[:0], req); err != nil {
		return nil, err
	}
	if w.pkt, err = ipc.AppendMarshal(w.pkt[:0], &ipc.Request{ID: 1, Op: op, Body: w.body}); err != nil {
		return nil, err
	}
	var r ipc.Response
	if err := ipc.UnmarshalNoCopy(w.reply, &r); err != nil {
		return nil, err
	}
	return nil, ipc.Unmarshal(r.Body, resp)
}

// BenchmarkScriptStat is the worker's Go per fs.stat call in a script's
// loop (Risor, the arguments, the codec both ways, the result map): all of
// a call but the round trip and the broker. An op is 1000 calls and
// the script's compilation.
func BenchmarkScriptStat(b *testing.B) {
	body, err := ipc.Marshal(&statReply)
	if err != nil {
		b.Fatal(err)
	}
	reply, err := ipc.Marshal(&ipc.Response{ID: 1, Body: body, Poll: true})
	if err != nil {
		b.Fatal(err)
	}
	c := &wireCaller{reply: reply}
	out := NewOutput(0)
	args, err := DecodeArgs([]byte(`{}`))
	if err != nil {
		b.Fatal(err)
	}
	bos := NewOS(c, out)
	ctx := ros.WithOS(context.Background(), bos)
	const script = `for i := 0; i < 1000; i++ { fs.stat("/var/log/syslog") }`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := risor.Eval(ctx, script, risor.WithoutDefaultGlobals(),
			risor.WithGlobals(Globals(c, out, args)), risor.WithOS(bos)); err != nil {
			b.Fatal(err)
		}
	}
}
