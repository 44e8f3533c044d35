//go:build !amd64

package seccomp

// compiled is empty where no program was generated: Install refuses.
var compiled []byte
