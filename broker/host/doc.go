// Package host is the only place where rex touches the host file system on a
// script's behalf. Every operation works from descriptors: paths are
// resolved with openat2 (RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS,
// RESOLVE_NO_XDEV, and RESOLVE_NO_SYMLINKS unless following), objects are
// typed with fstat on the opened descriptor, and follow-ups use that
// descriptor, never a second path lookup.
//
// Trust: root (in rex-broker) or the invoking user (standalone rex-exec).
// Callers pass canonical absolute paths that package authz has already
// authorised; this package still assumes the host may race it.
package host
