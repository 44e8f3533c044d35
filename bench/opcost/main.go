// Command opcost measures rex's per-operation cost against the floor of
// any broker design, in the same run: a bare request/response over a
// SOCK_SEQPACKET socketpair between two Go processes.
//
//	opcost -rex bin/rex-exec -n 10000
//
// rex's figure is (time of a script doing n fs.stat calls − time of an
// empty script) / n, medians over several runs each.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "echo-child" {
		echo()
		return
	}
	rex := flag.String("rex", "bin/rex-exec", "rex-exec binary")
	n := flag.Int("n", 10000, "operations per script")
	runs := flag.Int("runs", 5, "runs of each measurement")
	target := flag.Float64("target", 1.5, "target ratio rex/floor")
	flag.Parse()

	dir, err := os.MkdirTemp("", "rex-opcost-")
	check(err)
	defer os.RemoveAll(dir)
	pol := filepath.Join(dir, "p.cedar")
	check(os.WriteFile(pol, []byte(`permit(principal, action == file_system::Action::"stat", resource);`), 0o644))
	empty := filepath.Join(dir, "empty.risor")
	check(os.WriteFile(empty, []byte("1\n"), 0o644))
	loop := filepath.Join(dir, "loop.risor")
	check(os.WriteFile(loop, []byte(fmt.Sprintf("for i := 0; i < %d; i++ { fs.stat(%q) }\n1\n", *n, dir)), 0o644))
	var floors, bases, fulls []time.Duration
	for range *runs {
		// Interleaved, so that the machine's drift (this VM's speed moves
		// by a fifth within minutes) hits the floor and rex alike.
		floors = append(floors, floorRun(*n))
		bases = append(bases, timeCmd(*rex, "--policy", pol, empty))
		fulls = append(fulls, timeCmd(*rex, "--policy", pol, loop))
	}
	floor := median(floors) / time.Duration(*n)
	per := (median(fulls) - median(bases)) / time.Duration(*n)
	ratio := float64(per) / float64(floor)
	verdict := "PASS"
	if ratio > *target {
		verdict = "MISS"
	}
	fmt.Printf("%-28s rex %8.2f µs   floor %8.2f µs   ratio %5.2f   target %5.2f  %s\n",
		"per-op fs.stat vs seqpacket", us(per), us(floor), ratio, *target, verdict)
}

func floorRun(n int) time.Duration {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	check(err)
	self, err := os.Executable()
	check(err)
	child := exec.Command(self, "echo-child")
	// The child's end is closed through its os.File, never by number: a
	// File closed behind its back would close that number again from its
	// finalizer, by then reused (it once closed the pipe of a timed
	// rex-exec, which hung on, or died of SIGPIPE).
	end := os.NewFile(uintptr(fds[1]), "child")
	child.ExtraFiles = []*os.File{end}
	check(child.Start())
	end.Close()
	msg := make([]byte, 96) // about the size of an encoded stat request
	buf := make([]byte, 512)
	start := time.Now()
	for i := 0; i < n; i++ {
		check(retry(func() error { return unix.Sendmsg(fds[0], msg, nil, nil, 0) }))
		check(retry(func() error { _, _, _, _, err := unix.Recvmsg(fds[0], buf, nil, 0); return err }))
	}
	d := time.Since(start)
	unix.Close(fds[0])
	_ = child.Wait()
	return d
}

// echo answers every packet on fd 3 with a 300-byte reply (about a stat
// reply) until the peer closes.
func echo() {
	buf := make([]byte, 512)
	reply := make([]byte, 300)
	for {
		var n int
		err := retry(func() (err error) { n, _, _, _, err = unix.Recvmsg(3, buf, nil, 0); return err })
		if err != nil || n == 0 {
			return
		}
		if retry(func() error { return unix.Sendmsg(3, reply, nil, nil, 0) }) != nil {
			return
		}
	}
}

// retry repeats a syscall interrupted by the Go runtime's preemption
// signal.
func retry(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}

func timeCmd(argv ...string) time.Duration {
	cmd := exec.Command(argv[0], argv[1:]...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "opcost: %v: %s\n", err, out)
		os.Exit(1)
	}
	return time.Since(start)
}

func median(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "opcost:", err)
		os.Exit(1)
	}
}
