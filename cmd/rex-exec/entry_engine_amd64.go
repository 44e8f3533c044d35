//go:build !rexthin

package main

// rexEngineEntry is the engine build's entry point on amd64
// (entry_engine_amd64.s): the Makefile links rex-exec-standalone with
// -ldflags=-E=main.rexEngineEntry. For a root standalone run it starts
// the worker before the Go runtime starts, and leaves it in prespawn for
// adoptWorker to check; anything else, and any failure, goes on into the
// runtime as if it were not there.
func rexEngineEntry()

// workerEnv and otherCPUs are rexEngineEntry's subroutines; no Go code
// calls any of them.
func workerEnv()
func otherCPUs()

var _, _, _ = rexEngineEntry, workerEnv, otherCPUs

// prespawnUID is the host uid rexEngineEntry gives the worker: the first
// of broker's default worker uids, the one a standalone Runner hands its
// first run (TestPrespawnUID). The entry point reads it as plain data,
// before the runtime, so it must stay a constant initialiser.
var prespawnUID uint64 = 2_100_000_000
