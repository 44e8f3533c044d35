//go:build rexthin

package main

// The client build of rex-exec (tag rexthin), which `make build` installs as
// rex-exec: the daemon client with no broker in it. Agents call rex-exec
// once per script, and a Go binary's start grows with what it links: the
// broker, Cedar, net/http and crypto/tls make the engine build start in
// ~3.8 ms where this one takes ~2.5 (bench/RESULTS.md). Standalone mode
// (--policy, --learn, and `mcp --policy`) plays the broker in this very
// process, so the client re-executes into the engine build,
// rex-exec-standalone, with the same arguments and environment, before it
// has read anything from stdin.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/rex-sh/rex/ipc"
)

// engineState is empty: this build runs no standalone engine.
type engineState struct{}

// dropPrespawn is the engine's (engine.go): this build starts no worker.
func dropPrespawn() {}

// preloadPolicy is the engine's (engine.go): this build loads no policy.
func preloadPolicy() {}

// engineProcs is the engine's (engine.go).
func engineProcs(bool) {}

// engineName is the engine build's file name.
const engineName = "rex-exec-standalone"

// handOff re-executes into the engine build. It returns only when it
// cannot, with the exit code of the error it printed.
func handOff(pos []string, stdout, stderr io.Writer) (int, bool) {
	path, err := enginePath()
	if err == nil {
		err = syscall.Exec(path, os.Args, engineEnv(os.Environ()))
	}
	msg := fmt.Sprintf("standalone mode runs in %s, which could not be started: %v (install it next to rex-exec or in /usr/libexec/rex: make install)", engineName, err)
	if len(pos) == 1 && pos[0] == "mcp" {
		fmt.Fprintln(stderr, "rex-exec:", msg)
		return 1, true
	}
	res := errorResult(ipc.ErrInternal, "%s", msg)
	printResult(stdout, "json", res)
	return ipc.ExitCode(res), true
}

// enginePath finds the engine build: next to this binary (the build
// directory), in libexec/rex beside its bin directory (make install with any
// PREFIX), then in the usual libexec directories.
func enginePath() (string, error) {
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		dirs = append(dirs, dir, filepath.Join(dir, "..", "libexec", "rex"))
	}
	dirs = append(dirs, "/usr/local/libexec/rex", "/usr/libexec/rex")
	for _, d := range dirs {
		p := filepath.Join(d, engineName)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("not found next to rex-exec, in ../libexec/rex beside it, in /usr/local/libexec/rex or in /usr/libexec/rex")
}

// standalone is the engine's; this build hands over before it could run.
func standalone(*options, []byte, string, []byte) *ipc.Result {
	return errorResult(ipc.ErrInternal, "standalone mode runs in %s", engineName)
}

// learnRun is the engine's; this build hands over before it could run.
func learnRun(*options, string, io.Reader, io.Writer, io.Writer) int {
	fmt.Fprintf(os.Stderr, "rex-exec: --learn runs in %s\n", engineName)
	return 1
}
