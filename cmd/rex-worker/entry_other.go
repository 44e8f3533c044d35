//go:build !amd64

package main

// entryLockdown stays 0 where there is no entry point of our own (see
// entry_amd64.go): the worker makes every per-thread call itself.
var entryLockdown uint32
