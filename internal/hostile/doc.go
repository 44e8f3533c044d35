// Package hostile is rex's hostile test suite: every test is one attack of
// ../shared/SECURITY-TESTS.md, named after its stable id (TestH01_…), run
// against real processes. The worker-confinement attacks (H01–H13) run the
// evil worker (rex-worker built with the rexevil tag: the release sandbox,
// raw syscall probes instead of Risor) through the real broker.Runner, one
// worker per probe that may be killed, so that SIGSYS is observed. The
// protocol attacks (P01–P09) live next to the session they attack, in
// broker/rawpeer_test.go; the seccomp profile check in package seccomp.
//
// `make hostile` runs them all and prints the table (cmd/report).
//
// Trust: test code only; never linked into a release binary.
package hostile
