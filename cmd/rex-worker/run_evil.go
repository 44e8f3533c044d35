//go:build rexevil

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/rex-sh/rex/ipc"
	"golang.org/x/sys/unix"
)

// run replaces the Risor VM in test builds only (go build -tags rexevil):
// the sandbox bring-up is the release one, then the "script" is a command
// that lets tests inspect the locked-down process (the evil-worker harness
// of SECURITY-TESTS.md). Release builds never set the tag, so neither a
// script nor the broker can reach this code.
//
//	pause              report, say "rex-worker: paused" on stderr, wait for stdin EOF
//	raw NR [A0 [A1 [A2]]]  make one raw syscall, report its errno (or die by SIGSYS)
//	anything else      report
//
// The report (WorkerResult.Stdout) is the JSON of Report.
func run(start *ipc.Start, c *ipc.Client) *ipc.WorkerResult {
	f := strings.Fields(string(start.Script))
	r := probe()
	switch {
	case len(f) == 1 && f[0] == "pause":
		fmt.Fprintln(os.Stderr, "rex-worker: paused")
		io.Copy(io.Discard, os.Stdin)
	case len(f) >= 2 && f[0] == "raw":
		var a [4]uintptr
		for i, s := range f[1:min(len(f), 5)] {
			v, err := strconv.ParseUint(s, 0, 64)
			if err != nil {
				return &ipc.WorkerResult{ErrType: ipc.ErrValidation, ErrMessage: err.Error()}
			}
			a[i] = uintptr(v)
		}
		_, _, e := unix.RawSyscall(a[0], a[1], a[2], a[3])
		r.Raw = int(e)
	}
	b, _ := json.Marshal(r)
	return &ipc.WorkerResult{Stdout: string(b)}
}

// Report is what the evil worker sees from inside.
type Report struct {
	Hostname   string   `json:"hostname"`
	Domainname string   `json:"domainname"`
	UID        int      `json:"uid"`
	Cwd        string   `json:"cwd"`
	OpenErrno  int      `json:"open_errno"`
	SockErrno  int      `json:"socket_errno"`
	OpenFDs    []int    `json:"open_fds"`
	Env        []string `json:"env"`
	Raw        int      `json:"raw_errno"`
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
	for fd := 0; fd < 1024; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			r.OpenFDs = append(r.OpenFDs, fd)
		}
	}
	r.Env = os.Environ()
	return r
}
