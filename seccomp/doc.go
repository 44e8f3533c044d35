// Package seccomp is the worker's syscall allowlist as data (profile.go: one
// line per syscall with the reason), the same allowlist compiled to BPF by
// libseccomp ahead of time (program_amd64.bpf; the tests compile the profile
// again and compare), and the few lines that install it on every thread
// (TSYNC). Loading a ready program keeps cgo out of the worker.
//
// Trust: runs in the worker just before the script gets control; its input
// is the compiled-in profile only.
package seccomp
