package main

// rexEntry is the process's entry point on amd64 (entry_amd64.s): the
// build links rex-worker with -ldflags=-E=main.rexEntry (the Makefile and
// the tests' builds do). It drops the bounding set, locks the securebits
// and sets no_new_privs while the process has a single thread, so that
// every thread inherits them: otherwise each of those ~45 calls is made on
// every thread of the running Go program through AllThreadsSyscall, which
// stops the world and signals each thread once per call, about a third of
// a worker's start-up.
func rexEntry()

// entryLockdown is 1 when rexEntry made every one of its calls. The Go
// runtime starts after it and leaves it as it was (it lives in the zeroed
// data the kernel maps, which nothing else writes).
var entryLockdown uint32

var _ = rexEntry // the linker's -E names it; no Go code calls it

// entryUserns is 1 when rexEntry made the worker's user namespace (asked
// for with --userns), 2 when it failed at step entryUsernsStep with
// entryUsernsErrno, 0 when it was not asked.
var entryUserns, entryUsernsStep, entryUsernsErrno uint32

// mapLine and writeProc are rexEntry's subroutines (entry_amd64.s), called
// before the Go runtime exists; no Go code calls them.
func mapLine()
func writeProc()

var _, _ = mapLine, writeProc
