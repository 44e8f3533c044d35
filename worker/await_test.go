package worker

import (
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// withStdin runs f with fd 0 on the read end of a new pipe, whose write end
// it is given.
func withStdin(t *testing.T, f func(w *os.File)) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved, err := unix.Dup(0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = unix.Dup2(saved, 0)
		unix.Close(saved)
		r.Close()
		w.Close()
	}()
	if err := unix.Dup2(int(r.Fd()), 0); err != nil {
		t.Fatal(err)
	}
	f(w)
}

// A Start frame already waiting is read at once; one on its way is waited
// for after the run's preparation, and does not warm up (the CPU then
// belongs to the broker about to serve the run). Only a worker left
// waiting longer, as a pool's, warms up.
func TestAwaitStart(t *testing.T) {
	for _, c := range []struct {
		name       string
		delay      time.Duration // before the frame's first byte; <0: none
		prep, warm bool
	}{
		{"waiting", 0, false, false},
		{"within grace", startGrace / 10, true, false},
		{"none", -1, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			withStdin(t, func(w *os.File) {
				if c.delay == 0 {
					w.Write([]byte("S"))
				} else if c.delay > 0 {
					time.AfterFunc(c.delay, func() { w.Write([]byte("S")) })
				}
				prepared, warmed := false, false
				in := awaitStart(func() { prepared = true }, func() { warmed = true })
				if prepared != c.prep || warmed != c.warm {
					t.Errorf("prepared %v, warmed %v; want %v, %v", prepared, warmed, c.prep, c.warm)
				}
				if c.delay >= 0 {
					var b [1]byte
					if _, err := io.ReadFull(in, b[:]); err != nil || b[0] != 'S' {
						t.Errorf("read %q, %v", b, err)
					}
				}
			})
		})
	}
}
