//go:build !amd64

package main

// entryLockdown and entryUserns stay 0 where there is no entry point of
// our own (see entry_amd64.go): the worker makes every per-thread call
// itself, and the broker makes its user namespace (it never passes
// --userns here).
var entryLockdown, entryUserns, entryUsernsStep, entryUsernsErrno uint32
