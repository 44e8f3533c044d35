package hostile

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rex-sh/rex/internal/testutil"
	"github.com/rex-sh/rex/ipc"
)

// TestP06_ThroughRunner repeats the worst protocol attacks of
// broker/rawpeer_test.go from a real, sandboxed evil worker started by the
// real Runner: KILL-SESSION must also mean the worker is killed, its cgroup
// removed and the run reported as a protocol failure, fast, while the
// broker keeps serving (the invariants run one more benign run).
func TestP06_ThroughRunner(t *testing.T) {
	e := newEnv(t)
	stat, err := ipc.Marshal(&ipc.Request{ID: 1, Op: ipc.OpStat, Body: []byte{0x81, 0xa4, 'p', 'a', 't', 'h', 0xa1, '/'}})
	if err != nil {
		t.Fatal(err)
	}
	var obs []string
	for _, c := range []struct {
		name, script string
	}{
		{"fd smuggled with a valid request", "send " + hex.EncodeToString(stat) + " fd"},
		{"junk byte 0xc1", "send c1"},
		{"array32 bomb", "send ddffffffff"},
		{"100 000 nested arrays", "send " + hex.EncodeToString(append(bytes.Repeat([]byte{0x91}, 100000), 0xc0))},
	} {
		start := time.Now()
		res := e.run(c.script)
		took := time.Since(start)
		if res.Status != ipc.StatusError || res.Error == nil || res.Error.ErrorType != ipc.ErrCommunication ||
			!strings.Contains(res.Error.Message, "broke the protocol") {
			t.Errorf("%s: %s %+v, want the session killed as a protocol violation", c.name, res.Status, res.Error)
		}
		if took > 5*time.Second {
			t.Errorf("%s: run took %v", c.name, took)
		}
		obs = append(obs, fmt.Sprintf("%s: worker killed, run failed as protocol violation in %v", c.name, took.Round(time.Millisecond)))
	}
	// An empty packet reads as EOF in Go's poller (see P01): the session
	// ends quietly and the run's time limit, not the violation path, ends
	// the worker.
	res := e.runFor("send -", 2*time.Second)
	if res.Status != ipc.StatusError || res.Error == nil {
		t.Errorf("empty packet: %s %+v", res.Status, res.Error)
	} else {
		obs = append(obs, "empty packet: ended by the run's time limit ("+res.Error.ErrorType+")")
	}
	testutil.Hostile(t, "P06", "from a sandboxed worker via the real Runner: fd smuggling, junk, bomb, deep nesting, empty packet",
		"KILL-SESSION: worker killed, cgroup gone, broker serving", strings.Join(obs, "; "))
}
