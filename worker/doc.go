// Package worker brings up the sandbox and runs one Risor script in it.
// Stage one (namespace root, before any script byte is read) builds an empty
// root, sets limits, drops capabilities, sets no_new_privs and Landlock, then
// re-executes itself; stage two installs the seccomp allowlist on every
// thread, reads the Start frame and runs the script with only the globals
// of sdk.
//
// Trust: untrusted after lockdown. It runs in the rex-worker process, whose
// script is written by an AI agent; everything it sends to the broker is
// checked there. It never imports broker or authz.
package worker
