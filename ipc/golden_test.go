package ipc

import (
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// describe renders the whole message set (types, ops, codes, caps and every
// field with its wire name and Go type) as text.
func describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "caps frame=%d packet=%d inline=%d depth=%d fds=%d script=%d\n",
		MaxFrame, MaxPacket, MaxInline, MaxDepth, MaxFDs, MaxScript)
	for t := MsgHello; t <= MsgWorkerResult; t++ {
		fmt.Fprintf(&b, "msg %d\n", t)
	}
	for _, o := range Ops() {
		fmt.Fprintf(&b, "op %d %s\n", o, o)
	}
	var codes []int
	for c := range codeNames {
		codes = append(codes, int(c))
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Fprintf(&b, "code %d %s\n", c, Code(c))
	}
	for _, mk := range decoders {
		describeType(&b, reflect.TypeOf(mk()).Elem())
	}
	describeType(&b, reflect.TypeOf(Denial{}))
	describeType(&b, reflect.TypeOf(ResultError{}))
	describeType(&b, reflect.TypeOf(LogLine{}))
	describeType(&b, reflect.TypeOf(Metric{}))
	describeType(&b, reflect.TypeOf(Alarm{}))
	return b.String()
}

func describeType(b *strings.Builder, t reflect.Type) {
	fmt.Fprintf(b, "type %s\n", t.Name())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		fmt.Fprintf(b, "  %s %s\n", f.Tag.Get("msgpack"), f.Type)
	}
}

// TestProtocolGolden fails when the message set changes without a version
// bump. To accept a change: bump Version in protocol.go (with a history
// line), then run with REX_UPDATE_GOLDEN=1.
func TestProtocolGolden(t *testing.T) {
	const path = "testdata/protocol.golden"
	got := fmt.Sprintf("version %d\n%s", Version, describe())
	if os.Getenv("REX_UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) == got {
		return
	}
	wantVersion := strings.SplitN(string(want), "\n", 2)[0]
	if wantVersion == fmt.Sprintf("version %d", Version) {
		t.Fatalf("the protocol changed but Version is still %d: bump it (protocol.go) and regenerate %s with REX_UPDATE_GOLDEN=1", Version, path)
	}
	t.Fatalf("Version is %d but %s describes %s: regenerate it with REX_UPDATE_GOLDEN=1", Version, path, wantVersion)
}
