package seccomp

import _ "embed"

// compiled is the worker profile compiled by libseccomp for x86_64, with
// placeholderPID for SelfPID.
//
//go:embed program_amd64.bpf
var compiled []byte
