package authz

import (
	"math/rand/v2"
	"testing"

	"github.com/cedar-policy/cedar-go/types"
)

// uidString writes what cedar-go's EntityUID.String writes, on the ids its
// shortcut takes (printable ASCII) and on every kind it leaves to Cedar.
func TestUIDString(t *testing.T) {
	pieces := []string{"", "/", "/var/log/syslog", "a b", "~!@#$%^&*()_+{}|:<>?`-=[];,./", `"`, `'`, `\`,
		"\x00", "\t", "\n", "\x1f", "\x7f", "é", "日本", "\u200b", "\U0001F600", "\xff", "\u0301"}
	rng := rand.New(rand.NewPCG(3, 4))
	check := func(typ types.EntityType, id string) {
		t.Helper()
		u := types.NewEntityUID(typ, types.String(id))
		if got, want := uidString(u), u.String(); got != want {
			t.Fatalf("uidString(%q, %q) = %s, want %s", typ, id, got, want)
		}
	}
	for _, p := range pieces {
		check("file_system::Dir", p)
	}
	for range 20000 {
		var id []byte
		for range rng.IntN(6) {
			if rng.IntN(4) == 0 {
				id = append(id, byte(rng.IntN(256)))
			} else {
				id = append(id, pieces[rng.IntN(len(pieces))]...)
			}
		}
		check([]types.EntityType{"file_system::File", "file_system::Action", "process_system::Process"}[rng.IntN(3)], string(id))
	}
	if got := FileAction("read").String(); got != `file_system::Action::"read"` {
		t.Errorf("FileAction(read) = %s", got)
	}
}

func FuzzUIDString(f *testing.F) {
	f.Add("/var/log/syslog")
	f.Add("a'b\x7f")
	f.Fuzz(func(t *testing.T, id string) {
		u := types.NewEntityUID("file_system::File", types.String(id))
		if got, want := uidString(u), u.String(); got != want {
			t.Fatalf("uidString(%q) = %s, want %s", id, got, want)
		}
	})
}
