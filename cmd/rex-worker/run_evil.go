//go:build rexevil

package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rex-sh/rex/ipc"
	"golang.org/x/sys/unix"
)

// run replaces the Risor VM in test builds only (go build -tags rexevil):
// the sandbox bring-up is the release one, then the "script" is a command
// that lets tests inspect the locked-down process (the evil-worker harness
// of SECURITY-TESTS.md). Release builds never set the tag, so neither a
// script nor the broker can reach this code.
//
//	pause                  report, say "rex-worker: paused" on stderr, wait for stdin EOF
//	raw NR [A0 … A5]       make one raw syscall, report its errno (or die by SIGSYS)
//	rawlist NR,A0,… …      make several raw syscalls, report each errno (one SIGSYS kills all)
//	paths P …              open/openat2/stat/statx/access each path, report the errnos
//	threads N MS           start N locked threads, check each one's posture, hold them MS ms
//	int80 NR               make an i386 system call through int 0x80 (amd64 only)
//	send HEX [fd]          send HEX ("-": nothing) as one packet on the broker socket (with
//	                       stdin attached as SCM_RIGHTS if "fd"), then wait to be killed
//	anything else          report
//
// The report (WorkerResult.Stdout) is the JSON of Report.
func run(c *ipc.Client) func(*ipc.Start) *ipc.WorkerResult {
	return func(start *ipc.Start) *ipc.WorkerResult { return probeRun(start, c) }
}

func probeRun(start *ipc.Start, c *ipc.Client) *ipc.WorkerResult {
	f := strings.Fields(string(start.Script))
	r := probe()
	fail := func(err error) *ipc.WorkerResult {
		return &ipc.WorkerResult{ErrType: ipc.ErrValidation, ErrMessage: err.Error()}
	}
	switch {
	case len(f) == 1 && f[0] == "pause":
		fmt.Fprintln(os.Stderr, "rex-worker: paused")
		io.Copy(io.Discard, os.Stdin)
	case len(f) >= 2 && f[0] == "raw":
		e, err := rawCall(f[1:])
		if err != nil {
			return fail(err)
		}
		r.Raw = e
	case len(f) >= 2 && f[0] == "rawlist":
		for _, call := range f[1:] {
			e, err := rawCall(strings.Split(call, ","))
			if err != nil {
				return fail(err)
			}
			r.RawList = append(r.RawList, e)
		}
	case len(f) >= 2 && f[0] == "paths":
		r.Paths = map[string]map[string]int{}
		for _, p := range f[1:] {
			r.Paths[p] = pathProbes(p)
		}
	case len(f) == 3 && f[0] == "threads":
		n, err1 := strconv.Atoi(f[1])
		ms, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			return fail(fmt.Errorf("threads N MS"))
		}
		r.Threads = threadPosture(n, time.Duration(ms)*time.Millisecond)
	case len(f) >= 2 && f[0] == "send":
		pkt, err := hex.DecodeString(strings.TrimPrefix(f[1], "-"))
		if err != nil {
			return fail(err)
		}
		var oob []byte
		if len(f) == 3 && f[2] == "fd" {
			oob = unix.UnixRights(0)
		}
		if err := unix.Sendmsg(3, pkt, oob, nil, 0); err != nil {
			return fail(err)
		}
		// The broker must end the session and kill this worker; a reply
		// instead would be read here and reported.
		buf := make([]byte, ipc.MaxPacket)
		n, _, _, _, err := unix.Recvmsg(3, buf, nil, 0)
		r.Raw = errnoOf(err)
		r.Reply = buf[:max(n, 0)]
	case len(f) == 2 && f[0] == "int80":
		nr, err := strconv.ParseUint(f[1], 0, 32)
		if err != nil {
			return fail(err)
		}
		r.Raw = int80(uintptr(nr))
	}
	b, _ := json.Marshal(r)
	return &ipc.WorkerResult{Stdout: string(b)}
}

// rawCall parses "NR A0 … A5" and makes the call.
func rawCall(f []string) (int, error) {
	var a [7]uintptr
	if len(f) > len(a) {
		return 0, fmt.Errorf("at most 6 arguments")
	}
	for i, s := range f {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			return 0, err
		}
		a[i] = uintptr(v)
	}
	_, _, e := unix.RawSyscall6(a[0], a[1], a[2], a[3], a[4], a[5], a[6])
	return int(e), nil
}

func errnoOf(err error) int {
	if err == nil {
		return 0
	}
	if e, ok := err.(unix.Errno); ok {
		return int(e)
	}
	return -1
}

// pathProbes tries every path-taking way the worker might reach p.
func pathProbes(p string) map[string]int {
	out := map[string]int{}
	fd, err := unix.Open(p, unix.O_RDONLY, 0)
	out["open"] = errnoOf(err)
	if err == nil {
		unix.Close(fd)
	}
	fd, err = unix.Openat2(unix.AT_FDCWD, p, &unix.OpenHow{Flags: unix.O_RDONLY})
	out["openat2"] = errnoOf(err)
	if err == nil {
		unix.Close(fd)
	}
	var st unix.Stat_t
	out["stat"] = errnoOf(unix.Stat(p, &st))
	var stx unix.Statx_t
	out["statx"] = errnoOf(unix.Statx(unix.AT_FDCWD, p, 0, unix.STATX_BASIC_STATS, &stx))
	out["access"] = errnoOf(unix.Access(p, unix.R_OK))
	return out
}

// ThreadPosture is what every one of N freshly started threads saw.
type ThreadPosture struct {
	Threads int      `json:"threads"`
	Bad     []string `json:"bad"`
}

// threadPosture starts n goroutines locked to their own threads (new
// threads after lockdown), checks seccomp mode, no_new_privs and
// capabilities from each, and holds them for hold so that the broker side
// can read /proc/<pid>/task/*/status.
func threadPosture(n int, hold time.Duration) *ThreadPosture {
	var mu sync.Mutex
	res := &ThreadPosture{}
	var ready sync.WaitGroup
	release := make(chan struct{})
	for i := 0; i < n; i++ {
		ready.Add(1)
		go func() {
			runtime.LockOSThread()
			var bad []string
			if m, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0); err != nil || m != 2 {
				bad = append(bad, fmt.Sprintf("seccomp mode %d (%v)", m, err))
			}
			if v, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err != nil || v != 1 {
				bad = append(bad, fmt.Sprintf("no_new_privs %d (%v)", v, err))
			}
			hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
			var data [2]unix.CapUserData
			if err := unix.Capget(&hdr, &data[0]); err != nil {
				bad = append(bad, fmt.Sprintf("capget: %v", err))
			}
			for _, d := range data {
				if d.Effective|d.Permitted|d.Inheritable != 0 {
					bad = append(bad, fmt.Sprintf("capabilities %+v", d))
				}
			}
			mu.Lock()
			res.Threads++
			for _, b := range bad {
				res.Bad = append(res.Bad, fmt.Sprintf("tid %d: %s", unix.Gettid(), b))
			}
			mu.Unlock()
			ready.Done()
			<-release
		}()
	}
	ready.Wait()
	fmt.Fprintln(os.Stderr, "rex-worker: threads ready")
	time.Sleep(hold)
	close(release)
	return res
}

// Report is what the evil worker sees from inside.
type Report struct {
	Hostname   string                    `json:"hostname"`
	Domainname string                    `json:"domainname"`
	UID        int                       `json:"uid"`
	Cwd        string                    `json:"cwd"`
	OpenErrno  int                       `json:"open_errno"`
	SockErrno  int                       `json:"socket_errno"`
	OpenFDs    []int                     `json:"open_fds"`
	FDs        []FDInfo                  `json:"fds"`
	Env        []string                  `json:"env"`
	Raw        int                       `json:"raw_errno"`
	RawList    []int                     `json:"raw_list,omitempty"`
	Paths      map[string]map[string]int `json:"paths,omitempty"`
	Threads    *ThreadPosture            `json:"threads,omitempty"`
	Reply      []byte                    `json:"reply,omitempty"`
}

// FDInfo describes one open descriptor from inside, by fstat and fcntl.
type FDInfo struct {
	FD      int    `json:"fd"`
	Type    string `json:"type"`
	Flags   int    `json:"flags"` // F_GETFL
	Cloexec bool   `json:"cloexec"`
}

func probe() Report {
	var r Report
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		r.Hostname = unix.ByteSliceToString(u.Nodename[:])
		r.Domainname = unix.ByteSliceToString(u.Domainname[:])
	}
	r.UID = os.Getuid()
	r.Cwd, _ = os.Getwd()
	if _, err := unix.Open("/etc/passwd", unix.O_RDONLY, 0); err != nil {
		r.OpenErrno = int(err.(unix.Errno))
	}
	if _, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0); err != nil {
		r.SockErrno = int(err.(unix.Errno))
	}
	limit := 1024
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur < 1<<20 {
		limit = int(rl.Cur)
	}
	for fd := 0; fd < limit; fd++ {
		fdFlags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			continue
		}
		r.OpenFDs = append(r.OpenFDs, fd)
		info := FDInfo{FD: fd, Cloexec: fdFlags&unix.FD_CLOEXEC != 0}
		info.Flags, _ = unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			info.Type = "fstat: " + err.Error()
		} else {
			info.Type = fileType(st.Mode)
		}
		r.FDs = append(r.FDs, info)
	}
	r.Env = os.Environ()
	return r
}

func fileType(m uint32) string {
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFCHR:
		return "char"
	case unix.S_IFBLK:
		return "block"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFLNK:
		return "symlink"
	}
	return "anon"
}
