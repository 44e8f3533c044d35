package main

import "strings"

// engineEnv is the client build's (handOff in engine_thin.go); it is in
// both builds so that the engine build's tests, which CI runs, cover it.

// engineEnv is env for the engine: with GOMAXPROCS=1 and
// REX_ENGINE_PROCS=1 added when it sets no GOMAXPROCS and has at most
// maxEngineEnv entries, as the entry point adds them on amd64
// (engineEnvp in entry_thin_amd64.s; engineProcs in engine.go says why).
func engineEnv(env []string) []string {
	if len(env) > maxEngineEnv {
		return env
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "GOMAXPROCS=") {
			return env
		}
	}
	return append(env[:len(env):len(env)], "GOMAXPROCS=1", "REX_ENGINE_PROCS=1")
}

// maxEngineEnv is the most entries engineEnv adds to: what the entry
// point's copy holds (1024 pointers, less the two added and the NULL).
const maxEngineEnv = 1021
