package host

import (
	"os"
	"path/filepath"
	"testing"
)

// A principal's name follows /etc/passwd at once: a uid handed to another
// user is named after the new one at the next lookup, while the cached
// lookup for file owners may keep the old name for up to recheck.
func TestPrincipalNameFollowsTheFileAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path+".new", []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		// Replaced by rename, as useradd does: a new inode.
		if err := os.Rename(path+".new", path); err != nil {
			t.Fatal(err)
		}
	}
	db := &nameDB{path: path}
	write("alice:x:1500:1500::/home/alice:/bin/sh\n")
	if got := db.lookupNow(1500); got != "alice" {
		t.Fatalf("uid 1500 = %q, want alice", got)
	}
	if got := db.lookupNow(1501); got != "1501" {
		t.Fatalf("unknown uid 1501 = %q, want the number", got)
	}
	write("mallory:x:1500:1500::/home/mallory:/bin/sh\n")
	if got := db.lookupNow(1500); got != "mallory" {
		t.Fatalf("uid 1500 after the change = %q, want mallory", got)
	}
}
