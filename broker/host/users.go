package host

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// nameDB caches the id → name map of one colon-separated database file
// (/etc/passwd, /etc/group), re-read when the file's inode, size or mtime
// changes. The broker parses these itself: no NSS, no cgo, no daemon.
type nameDB struct {
	path string

	mu      sync.Mutex
	stamp   [4]int64 // ino, size, mtime sec, mtime nsec of the parsed file
	names   map[uint32]string
	checked time.Time // last stat of the file
}

// recheck is how long a parsed file is trusted without a stat. Names are
// attributes of entities and of stat results: a user renamed a moment ago
// may show under the old name for this long, never a wrong uid.
const recheck = time.Second

var (
	users  = &nameDB{path: "/etc/passwd"}
	groups = &nameDB{path: "/etc/group"}
)

// UserName returns the login name of uid, or the number when it has none.
func UserName(uid uint32) string { return users.lookup(uid) }

// GroupName returns the name of gid, or the number when it has none.
func GroupName(gid uint32) string { return groups.lookup(gid) }

// PrincipalUserName is UserName with the file checked now, not within the
// last second: a principal's name decides which policies apply, so a uid
// given to another user a moment ago must not run under the old name. The
// check is one stat; the file is parsed again only when it changed.
func PrincipalUserName(uid uint32) string { return users.lookupNow(uid) }

// PrincipalGroupName is GroupName checked now, as PrincipalUserName.
func PrincipalGroupName(gid uint32) string { return groups.lookupNow(gid) }

func (db *nameDB) lookup(id uint32) string {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.refresh()
	return db.name(id)
}

func (db *nameDB) lookupNow(id uint32) string {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.checked = time.Time{}
	db.refresh()
	return db.name(id)
}

func (db *nameDB) name(id uint32) string {
	if n, ok := db.names[id]; ok {
		return n
	}
	return strconv.FormatUint(uint64(id), 10)
}

// refresh re-reads the file if it changed; an unreadable file keeps the
// last good map (or none), so names degrade to numbers, never to errors.
func (db *nameDB) refresh() {
	// time.Since reads only the monotonic clock, time.Now the wall clock
	// too: every stat's reply names an owner and a group, so this runs
	// twice per call.
	if db.names != nil && time.Since(db.checked) < recheck {
		return
	}
	db.checked = time.Now()
	var st unix.Stat_t
	if err := unix.Stat(db.path, &st); err != nil {
		return
	}
	stamp := [4]int64{int64(st.Ino), st.Size, st.Mtim.Sec, st.Mtim.Nsec}
	if db.names != nil && stamp == db.stamp {
		return
	}
	data, err := os.ReadFile(db.path)
	if err != nil {
		return
	}
	db.names = parseNameDB(data)
	db.stamp = stamp
	// A file rewritten within one mtime tick would look unchanged; keep
	// the stamp unmatchable for a moment after such a recent write.
	if time.Since(time.Unix(st.Mtim.Sec, st.Mtim.Nsec)) < time.Second {
		db.stamp[0] = -1
	}
}

// parseNameDB reads "name:x:id:..." lines; the first name of an id wins,
// as with getpwuid.
func parseNameDB(data []byte) map[uint32]string {
	m := map[uint32]string{}
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		f := bytes.SplitN(line, []byte{':'}, 4)
		if len(f) < 4 || len(f[0]) == 0 || f[0][0] == '#' {
			continue
		}
		id, err := strconv.ParseUint(string(f[2]), 10, 32)
		if err != nil {
			continue
		}
		if _, dup := m[uint32(id)]; !dup {
			m[uint32(id)] = string(f[0])
		}
	}
	return m
}

// UserID resolves a login name or a decimal uid.
func UserID(name string) (uint32, bool) { return users.id(name) }

// GroupID resolves a group name or a decimal gid.
func GroupID(name string) (uint32, bool) { return groups.id(name) }

// id finds the id of name; a decimal string is taken as the id itself, as
// chown(1) does for names that do not exist.
func (db *nameDB) id(name string) (uint32, bool) {
	db.mu.Lock()
	db.refresh()
	var found uint32
	ok := false
	for id, n := range db.names {
		if n == name && (!ok || id < found) {
			found, ok = id, true
		}
	}
	db.mu.Unlock()
	if ok {
		return found, true
	}
	if v, err := strconv.ParseUint(name, 10, 32); err == nil && v != 1<<32-1 {
		return uint32(v), true
	}
	return 0, false
}

// PrimaryGID is the login group of uid in /etc/passwd.
func PrimaryGID(uid uint32) (uint32, bool) {
	data, err := os.ReadFile(users.path)
	if err != nil {
		return 0, false
	}
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		f := bytes.SplitN(line, []byte{':'}, 5)
		if len(f) < 5 || string(f[2]) != strconv.FormatUint(uint64(uid), 10) {
			continue
		}
		if g, err := strconv.ParseUint(string(f[3]), 10, 32); err == nil {
			return uint32(g), true
		}
	}
	return 0, false
}
