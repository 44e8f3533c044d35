// Package worker brings up the sandbox and runs one Risor script in it.
// Starting as root of its own namespaces, before any script byte is read,
// it builds an empty root, sets limits, drops capabilities and sets
// no_new_privs and Landlock on every thread at once, checks the result and
// installs the seccomp allowlist on every thread; then it reads the Start
// frame and runs the script with only the globals of sdk. What threads
// inherit (bounding set, securebits, no_new_privs) rex-worker's entry
// point may have set before the Go runtime started a thread (Main's
// Entry.Locked); the worker checks it rather than trusts it. When a root
// daemon asks for it (ipc.WorkerUsernsArg), the same entry point has made
// the worker's user, mount and uts namespaces (Entry.Userns), and the
// worker goes no further without them.
//
// Trust: untrusted after lockdown. It runs in the rex-worker process, whose
// script is written by an AI agent; everything it sends to the broker is
// checked there. It never imports broker or authz.
package worker
