//go:build rexthin

package main

// rexExecEntry is the client build's entry point on amd64
// (entry_thin_amd64.s): the Makefile links `rex-exec` with
// -ldflags=-E=main.rexExecEntry. It re-executes a standalone invocation
// into the engine build before the Go runtime starts; anything else, and
// any failure, goes on into the runtime and main.
func rexExecEntry()

// execEngine and engineEnvp are rexExecEntry's subroutines; no Go code
// calls any of them.
func execEngine()
func engineEnvp()

var _, _, _ = rexExecEntry, execEngine, engineEnvp
