package jsonstr

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// Append writes what json.Marshal writes, on every kind of byte and rune
// that either escapes or passes, alone and mixed.
func TestAppendMatchesMarshal(t *testing.T) {
	pieces := []string{"", "a", "plain text", `"`, `\`, "<", ">", "&", "\b", "\f", "\n", "\r", "\t",
		"\x00", "\x01", "\x1f", "\x7f", "é", "日本", "\u2028", "\u2029", "\U0001F600", "\xff", "\xc3",
		"\xe2\x80", "\xed\xa0\x80", "file_system::Dir::\"/tmp/a b\""}
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(s string) {
		t.Helper()
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := Append(nil, s); string(got) != string(want) {
			t.Fatalf("Append(%q) = %s, want %s", s, got, want)
		}
	}
	for _, p := range pieces {
		check(p)
	}
	for range 20000 {
		var s []byte
		for range rng.IntN(8) {
			if rng.IntN(3) == 0 {
				s = append(s, byte(rng.IntN(256)))
			} else {
				s = append(s, pieces[rng.IntN(len(pieces))]...)
			}
		}
		check(string(s))
	}
	if got := string(Append([]byte("x:"), "y")); got != `x:"y"` {
		t.Errorf("Append does not append: %s", got)
	}
}

func FuzzAppend(f *testing.F) {
	f.Add("file_system::Dir::\"/tmp\"")
	f.Add("\xff<\u2028>")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := Append(nil, s); string(got) != string(want) {
			t.Fatalf("Append(%q) = %s, want %s", s, got, want)
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	buf := make([]byte, 0, 256)
	for b.Loop() {
		buf = Append(buf[:0], `file_system::Dir::"/var/log/syslog"`)
	}
}
