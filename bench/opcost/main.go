// Command opcost measures rex's per-operation cost against the floor of
// any broker design, in the same run: a bare request/response over a
// SOCK_SEQPACKET socketpair between two Go processes.
//
//	opcost -rex bin/rex-exec -n 10000
//
// rex's figure is (time of a script doing n fs.stat calls − time of an
// empty script) / n, medians over several runs each.
//
// Two more bare-Go figures, from the same runs, say where rex's margin
// goes: the same round trip with both ends polling (non-blocking recvmsg,
// as rex's ends do while one run has the broker), and that plus the
// system calls of rex's confined stat (openat2 of the entry, statx of that
// descriptor, and the close after the reply; the mount table's ppoll, at most once a
// millisecond). What rex costs beyond the second is its own code: Risor,
// the codec, authorisation, the audit record, the result map.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) > 3 && os.Args[1] == "echo-child" {
		echo(os.Args[2], os.Args[3])
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
	var floors, polls, lookups, bases, fulls []time.Duration
	for range *runs {
		// Interleaved, so that the machine's drift (this VM's speed moves
		// by a fifth within minutes) hits the floor and rex alike.
		floors = append(floors, floorRun(*n, "block", dir))
		polls = append(polls, floorRun(*n, "poll", dir))
		lookups = append(lookups, floorRun(*n, "lookup", dir))
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
	poll, lookup := median(polls)/time.Duration(*n), median(lookups)/time.Duration(*n)
	fmt.Printf("%-28s polling %.2f µs (%.2f), + confined stat %.2f µs (%.2f); rex's own code %.2f µs\n",
		"  bare Go, same runs", us(poll), float64(poll)/float64(floor), us(lookup), float64(lookup)/float64(floor), us(per-lookup))
}

// floorRun times n request/response exchanges with a child process
// answering on a SOCK_SEQPACKET socketpair. mode "block": both ends block
// in recvmsg (the floor). "poll": both ends poll. "lookup": both poll, and
// the child looks dir up as rex's broker does before each reply.
func floorRun(n int, mode, dir string) time.Duration {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	check(err)
	self, err := os.Executable()
	check(err)
	child := exec.Command(self, "echo-child", mode, dir)
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
	flags := 0
	if mode != "block" {
		flags = unix.MSG_DONTWAIT
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		check(retry(func() error { return unix.Sendmsg(fds[0], msg, nil, nil, 0) }))
		check(retry(func() error { _, _, _, _, err := unix.Recvmsg(fds[0], buf, nil, flags); return err }))
	}
	d := time.Since(start)
	unix.Close(fds[0])
	_ = child.Wait()
	return d
}

// echo answers every packet on fd 3 with a 300-byte reply (about a stat
// reply) until the peer closes; see floorRun for the modes.
func echo(mode, dir string) {
	buf := make([]byte, 512)
	reply := make([]byte, 300)
	flags := 0
	if mode != "block" {
		flags = unix.MSG_DONTWAIT
	}
	var stat, after func() error
	if mode == "lookup" {
		stat, after = confinedStat(dir)
	}
	for {
		var n int
		err := retry(func() (err error) { n, _, _, _, err = unix.Recvmsg(3, buf, nil, flags); return err })
		if err != nil || n == 0 {
			return
		}
		if stat != nil {
			check(stat())
		}
		if retry(func() error { return unix.Sendmsg(3, reply, nil, nil, 0) }) != nil {
			return
		}
		if after != nil {
			check(after())
		}
	}
}

// confinedStat returns the system calls of broker/host's stat of dir, with
// none of its code around them: ppoll on the mount table (has it
// changed?) if the last was a millisecond ago or more, openat2 of the
// entry beneath "/" with rex's resolve flags, statx of that descriptor;
// and, as after, what the broker leaves until its reply is sent: the close.
func confinedStat(dir string) (stat, after func() error) {
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	check(err)
	mounts, err := unix.Open("/proc/self/mountinfo", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	check(err)
	rel := strings.TrimPrefix(dir, "/")
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_SYMLINKS}
	if fd, err := unix.Openat2(root, rel, &how); err == unix.EXDEV {
		// dir is on another mount than "/" (a tmpfs /tmp): the broker
		// starts from that mount's root, found with one openat2 and one
		// statx more, which this then leaves out.
		how.Resolve &^= unix.RESOLVE_NO_XDEV
	} else if err == nil {
		unix.Close(fd)
	}
	pfd := []unix.PollFd{{Fd: int32(mounts), Events: unix.POLLPRI}}
	var stx unix.Statx_t
	var polled time.Time
	open := -1
	stat = func() error {
		if time.Since(polled) >= time.Millisecond {
			polled = time.Now()
			if _, err := unix.Poll(pfd, 0); err != nil && err != unix.EINTR {
				return err
			}
		}
		fd, err := unix.Openat2(root, rel, &how)
		if err != nil {
			return err
		}
		open = fd
		return unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_SYNC_AS_STAT, unix.STATX_BASIC_STATS, &stx)
	}
	after = func() error {
		if open < 0 {
			return nil
		}
		fd := open
		open = -1
		return unix.Close(fd)
	}
	return stat, after
}

// retry repeats a syscall interrupted by the Go runtime's preemption
// signal, and, for a polling end, one that found nothing yet.
func retry(f func() error) error {
	for {
		if err := f(); err != unix.EINTR && err != unix.EAGAIN {
			return err
		}
	}
}

func timeCmd(argv ...string) time.Duration {
	cmd := exec.Command(argv[0], argv[1:]...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		fmt.Fprintf(os.Stderr, "opcost: %v: %s\n", err, out)
		os.Exit(1)
	}
	settle()
	return d
}

// settle lets the work a run leaves behind (the kernel freeing its
// namespaces and memory on a workqueue) finish before the next
// measurement, which it would otherwise slow: the floor as much as rex.
func settle() { time.Sleep(50 * time.Millisecond) }

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
