// Package seccomp is the worker's syscall allowlist as data (profile.go: one
// line per syscall with the reason), a pure function that turns it into a
// filter tests can inspect, and the few lines that install it on every
// thread (TSYNC) through libseccomp.
//
// Trust: runs in the worker just before the script gets control; its input
// is the compiled-in profile only.
package seccomp
