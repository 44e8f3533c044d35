package main

import (
	"fmt"
	"slices"
	"testing"
)

// engineEnv adds GOMAXPROCS=1 and its marker unless the caller chose a
// GOMAXPROCS or the environment is larger than the entry point copies,
// and never changes the caller's slice.
func TestEngineEnv(t *testing.T) {
	base := []string{"PATH=/usr/bin", "HOME=/root"}
	in := slices.Clip(slices.Clone(base))
	if got := engineEnv(in); !slices.Equal(got, append(slices.Clone(base), "GOMAXPROCS=1", "REX_ENGINE_PROCS=1")) {
		t.Errorf("plain: %q", got)
	}
	if !slices.Equal(in, base) {
		t.Errorf("the caller's environment changed: %q", in)
	}
	chosen := append(slices.Clone(base), "GOMAXPROCS=2")
	if got := engineEnv(chosen); !slices.Equal(got, chosen) {
		t.Errorf("caller's GOMAXPROCS: %q", got)
	}
	if got := engineEnv([]string{"GOMAXPROCSX=1"}); !slices.Contains(got, "GOMAXPROCS=1") {
		t.Errorf("a variable that only starts like it: %q", got)
	}
	many := make([]string, maxEngineEnv+1)
	for i := range many {
		many[i] = fmt.Sprintf("V%d=x", i)
	}
	if got := engineEnv(many); len(got) != len(many) {
		t.Errorf("%d entries: %d after", len(many), len(got))
	}
	if got := engineEnv(many[:maxEngineEnv]); len(got) != maxEngineEnv+2 {
		t.Errorf("%d entries: %d after, want two more", maxEngineEnv, len(got))
	}
}
