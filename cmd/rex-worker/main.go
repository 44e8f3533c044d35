// Command rex-worker is the sandboxed process that runs one Risor script.
// rex-broker starts it in fresh namespaces with the broker socket on fd 3;
// it locks itself down (see package worker) before reading the script from
// stdin, and writes the result to stdout.
//
// It must be built without cgo (CGO_ENABLED=0): its lock-down uses
// syscall.AllThreadsSyscall, which the runtime refuses with cgo, and once
// its root is empty there is no dynamic loader. On amd64 it is linked with
// -ldflags=-E=main.rexEntry: see entry_amd64.go.
//
// Trust: untrusted after lockdown; its inputs come from the broker, its
// script from an AI agent.
//
// The Go runtime would keep its cgroup's CPU limit file open for the life
// of the process, to re-read it for GOMAXPROCS; the lock-down closes every
// descriptor above the broker socket, so the runtime must not hold one.
// The broker sets GOMAXPROCS itself.

//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/rex-sh/rex/worker"
)

func main() {
	os.Exit(worker.Main(os.Args, run, worker.Entry{Locked: entryLockdown == 1, Userns: usernsAtEntry()}))
}

// usernsAtEntry is what rexEntry's user namespace came to: nil when it
// made one, else why not.
func usernsAtEntry() error {
	steps := [...]string{1: "unshare(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWUTS)", 2: "write /proc/self/setgroups",
		3: "write /proc/self/uid_map", 4: "write /proc/self/gid_map"}
	switch entryUserns {
	case 1:
		return nil
	case 2:
		step := "step " + fmt.Sprint(entryUsernsStep)
		if int(entryUsernsStep) < len(steps) {
			step = steps[entryUsernsStep]
		}
		return fmt.Errorf("%s: %w", step, syscall.Errno(entryUsernsErrno))
	}
	return errors.New("the entry point did not make it (not amd64, or a build without -ldflags=-E=main.rexEntry)")
}
