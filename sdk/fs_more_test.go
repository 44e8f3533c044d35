package sdk

import (
	"bytes"
	"compress/gzip"
	"os"
	"testing"

	"github.com/rex-sh/rex/ipc"
	"github.com/rex-sh/rex/sdk/sdktest"
)

func gz(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(data)
	zw.Close()
	return b.Bytes()
}

func TestGunzipCaps(t *testing.T) {
	got, err := gunzipCapped(gz(t, []byte("hello\n")), "/x.gz")
	if err != nil || string(got) != "hello\n" {
		t.Fatalf("gunzip = %q, %v", got, err)
	}
	// 8 MiB of zeros compresses about 1000:1, past the ratio cap.
	wantIPCError(t, func() error { _, err := gunzipCapped(gz(t, make([]byte, 8<<20)), "/bomb.gz"); return err }(), ipc.CodeLimit)
	wantIPCError(t, func() error { _, err := gunzipCapped([]byte("plain"), "/x"); return err }(), ipc.CodeInvalid)
}

func TestTextFunctionsReadThroughTheBroker(t *testing.T) {
	f := sdktest.New().Reply(ipc.OpRead, &ipc.ReadResp{Data: []byte("one two\nthree\nfour\n"), Size: 19})
	got := asJSON(t, mustEval(t, f, `[fs.head("/f", {n: 1}), fs.tail("/f", {n: 2}), fs.wc("/f"),
		fs.grep("^t", "/f"), fs.grep("O", "/f", {ignore_case: true, count: true})]`))
	want := `[["one two"],["three","four"],{"bytes":19,"lines":3,"words":4},["three"],2]`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	for _, c := range f.Calls() {
		if r := c.Req.(*ipc.ReadReq); r.Path != "/f" || r.Follow {
			t.Errorf("read request %+v", r)
		}
	}
}

func TestSedInPlaceWrites(t *testing.T) {
	var written []byte
	f := sdktest.New().Reply(ipc.OpRead, &ipc.ReadResp{Data: []byte("a-a\nb\n"), Size: 6}).
		On(ipc.OpWrite, func(req any) (any, *os.File, error) {
			written = req.(*ipc.WriteReq).Data
			return &ipc.WriteResp{N: int64(len(written))}, nil, nil
		})
	got := asJSON(t, mustEval(t, f, `fs.sed("-", "+", "/f", {all: true, in_place: true})`))
	if got != `"a+a\nb\n"` || string(written) != "a+a\nb\n" {
		t.Fatalf("sed = %s, wrote %q", got, written)
	}
}

func TestFindAndDuOnWalk(t *testing.T) {
	f := sdktest.New().Reply(ipc.OpWalk, &ipc.WalkResp{Entries: []ipc.WalkEntry{
		{Path: "/d/a.txt", Kind: "file", Size: 10, Depth: 1},
		{Path: "/d/s", Kind: "dir", Depth: 1},
		{Path: "/d/s/b.txt", Kind: "file", Size: 5, Depth: 2},
		{Path: "/d/s/l", Kind: "symlink", Size: 3, Depth: 2},
	}})
	got := asJSON(t, mustEval(t, f, `[fs.find("/d", "*.txt"), fs.find("/d", "*", {type: "l"}), fs.find("/d", "*", {min_size: 6}),
		fs.du("/d"), fs.du("/d", {summarize: true})]`))
	want := `[["/d/a.txt","/d/s/b.txt"],["/d/s/l"],["/d/a.txt"],` +
		`{"entries":[{"bytes":15,"path":"/d"},{"bytes":5,"path":"/d/s"}],"total_bytes":15},` +
		`{"entries":[{"bytes":15,"path":"/d"}],"total_bytes":15}]`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestParseOctal(t *testing.T) {
	for s, want := range map[string]int64{"0640": 0o640, "755": 0o755, "0o600": 0o600, "0": 0} {
		if n, ok := parseOctal(s); !ok || n != want {
			t.Errorf("parseOctal(%q) = %o, %v", s, n, ok)
		}
	}
	for _, s := range []string{"9", "rwx", "77777"} {
		if _, ok := parseOctal(s); ok {
			t.Errorf("parseOctal(%q) accepted", s)
		}
	}
}

// TestOSRenameSymlink: Risor's os.rename and os.symlink are the broker's
// move and symlink, checked like fs.mv and fs.symlink.
func TestOSRenameSymlink(t *testing.T) {
	f := sdktest.New().Reply(ipc.OpMove, &ipc.Empty{}).Reply(ipc.OpSymlink, &ipc.Empty{})
	mustEval(t, f, `os.rename("/a", "/b"); os.symlink("/t", "/l")`)
	calls := f.Calls()
	if len(calls) != 2 {
		t.Fatalf("calls: %+v", calls)
	}
	if r := calls[0].Req.(*ipc.MoveReq); r.Src != "/a" || r.Dst != "/b" {
		t.Errorf("rename: %+v", r)
	}
	if r := calls[1].Req.(*ipc.SymlinkReq); r.Target != "/t" || r.Link != "/l" || r.Force {
		t.Errorf("symlink: %+v", r)
	}
}
