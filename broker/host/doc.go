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
//
// The caller's sequence is lookup, authorise, operate: FS.Lookup (or
// FS.LookupParent for a name to create) returns an *Object holding O_PATH
// descriptors and the fstat Info the caller authorises on; the operation
// then goes through that Object and checks that it still reaches the same
// inode (dev, ino), failing with ErrChanged otherwise.
//
// Mounts: RESOLVE_NO_XDEV refuses every mount crossing, so each lookup
// starts from the deepest mount point that is a component-wise prefix of the
// path, taken from /proc/self/mountinfo (re-read when poll reports a change,
// asked at most once a millisecond: the poll costs about a microsecond, a
// re-read hundreds; and at once when a lookup meets EXDEV). That mount root is
// opened from "/" without symlinks and verified with statx (STATX_MNT_ID and
// STATX_ATTR_MOUNT_ROOT) to be the mount the table named; a mount that does
// not verify is skipped, so the walk from a shallower mount stops with EXDEV
// at the swapped mount point instead of going through it.
//
// Following symlinks is done here, textually, one component at a time,
// each step a confined lookup: the resolved path is exact (Object.Path) for
// the caller to authorise again, ".." in a target applies to the resolved
// text (never the physical parent of a directory that may have been
// renamed), and procfs symlinks are never followed (magic links, and
// /proc/self, which would mean the broker).
//
// Content is only ever opened for regular files: the O_PATH lookup is
// fstat'ed first, then the name is reopened in its parent directory with
// O_NOFOLLOW|O_NONBLOCK|O_NOCTTY and fstat'ed again. One window remains that
// the kernel gives no way to close without reopening through procfs: a host
// actor able to put a device node on the same mount between the two fstats
// gets it opened (non-blocking) before the check refuses it.
package host
