package main

// policyArg and exeDir are the subroutines both entry points share
// (entry_amd64.s): the client's (entry_thin_amd64.s) and the engine's
// (entry_engine_amd64.s). No Go code calls them.
func policyArg()
func exeDir()

var _, _ = policyArg, exeDir
