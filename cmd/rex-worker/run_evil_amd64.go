//go:build rexevil

package main

// int80 makes the i386 system call nr through int 0x80 and returns the
// kernel's raw result (negative errno). Implemented in run_evil_amd64.s.
func int80(nr uintptr) int
