package host

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rex-sh/rex/ipc"
)

func TestCodeAndWireError(t *testing.T) {
	pe := func(err error) error { return pathErr("lookup", "/srv/data/x", err) }
	cases := []struct {
		err  error
		code ipc.Code
		msg  string
	}{
		{pe(unix.ENOENT), ipc.CodeNotFound, "/srv/data/x: no such file or directory"},
		{pe(unix.EEXIST), ipc.CodeExists, "/srv/data/x: file exists"},
		{pe(unix.ELOOP), ipc.CodeLoop, "/srv/data/x: path contains a symlink; symlinks are not followed"},
		{pe(errTooManyLinks), ipc.CodeLoop, "/srv/data/x: too many levels of symbolic links"},
		{pe(errMagicLink), ipc.CodeLoop, "/srv/data/x: path contains a magic link, which is never followed"},
		{pe(unix.EXDEV), ipc.CodeXDev, "/srv/data/x: path crosses a mount point"},
		{pe(unix.ENOTDIR), ipc.CodeNotDir, "/srv/data/x: not a directory"},
		{pe(unix.EISDIR), ipc.CodeIsDir, "/srv/data/x: is a directory"},
		{pe(unix.ENOTEMPTY), ipc.CodeNotEmpty, "/srv/data/x: directory not empty"},
		{pe(ErrTooLarge), ipc.CodeLimit, "/srv/data/x: file too large"},
		{pe(ErrNotRegular), ipc.CodeUnsupported, "/srv/data/x: not a regular file"},
		{pe(ErrChanged), ipc.CodeIO, "/srv/data/x: changed during the operation"},
		{pe(unix.EACCES), ipc.CodeIO, "/srv/data/x: operation failed"},
		{pe(unix.EPERM), ipc.CodeIO, "/srv/data/x: operation failed"},
		{pe(unix.EIO), ipc.CodeIO, "/srv/data/x: operation failed"},
		{pe(unix.EINVAL), ipc.CodeInvalid, "/srv/data/x: invalid path or argument"},
		{errors.New("mountinfo: bad line /secret/host/detail"), ipc.CodeIO, "operation failed"},
	}
	for _, c := range cases {
		if got := Code(c.err); got != c.code {
			t.Errorf("Code(%v) = %v, want %v", c.err, got, c.code)
		}
		w := WireError(c.err)
		if w.Code != c.code || w.Message != c.msg {
			t.Errorf("WireError(%v) = %v %q, want %v %q", c.err, w.Code, w.Message, c.code, c.msg)
		}
	}
	if Code(nil) != ipc.CodeOK || WireError(nil) != nil {
		t.Error("nil error")
	}
	// A denial is never produced here, and an existing *ipc.Error passes.
	denied := &ipc.Error{Code: ipc.CodeDenied, Message: "Permission denied"}
	if Code(fmt.Errorf("x: %w", denied)) != ipc.CodeDenied || WireError(denied) != denied {
		t.Error("ipc.Error not passed through")
	}
}

func TestParseMountinfo(t *testing.T) {
	data := []byte(`22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 0:40 / /srv/with\040space rw - tmpfs none rw
41 27 0:41 / /srv/data rw - tmpfs none rw
42 41 0:42 / /srv/data/inner rw - tmpfs none rw
43 27 0:43 / /srv/data rw - tmpfs none rw
`)
	tab, err := parseMountinfo(data)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range slices.Collect(tab.candidates("/srv/data/inner/x")) {
		got = append(got, fmt.Sprintf("%d:%s", m.id, m.point))
	}
	// Deepest first; the over-mount (43) hides 41.
	if strings.Join(got, " ") != "42:/srv/data/inner 43:/srv/data 27:/" {
		t.Errorf("candidates = %v", got)
	}
	if c := slices.Collect(tab.candidates("/srv/data2/x")); len(c) != 1 || c[0].point != "/" {
		t.Errorf("prefix confusion: %v", c)
	}
	if c := slices.Collect(tab.candidates("/srv/with space/f")); len(c) != 2 || c[0].id != 40 {
		t.Errorf("escaped mount point: %v", c)
	}
	for _, bad := range []string{"x", "1 2 3 4", "a 1 0:1 / / rw - x y z", `1 1 0:1 / /a\04 rw - x y z`, "1 1 0:1 / rel rw - x y z"} {
		if _, err := parseMountinfo([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestUserAndGroupNames(t *testing.T) {
	if UserName(0) != "root" || GroupName(0) != "root" {
		t.Errorf("uid 0 = %q, gid 0 = %q", UserName(0), GroupName(0))
	}
	if UserName(4000000001) != "4000000001" || GroupName(4000000001) != "4000000001" {
		t.Error("unknown id does not fall back to the number")
	}
	m := parseNameDB([]byte("# comment\nalice:x:1000:1000::/home/alice:/bin/sh\nalias:x:1000:1000::/:/bin/sh\nbroken:x:notanumber:1\n\n"))
	if len(m) != 1 || m[1000] != "alice" {
		t.Errorf("parse = %v", m)
	}
}

// The cost of keeping the mount table fresh: the poll done per lookup,
// against re-reading mountinfo on every request.
func BenchmarkMountTablePoll(b *testing.B) {
	f := newFS(b)
	for b.Loop() {
		if _, err := f.table(false); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMountTableReread(b *testing.B) {
	f := newFS(b)
	for b.Loop() {
		if _, err := f.table(true); err != nil {
			b.Fatal(err)
		}
	}
}

func benchFile(b *testing.B) string {
	d := tempDir(b)
	p := d + "/f"
	if err := os.WriteFile(p, make([]byte, 4096), 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

func BenchmarkLookupReadAll4K(b *testing.B) {
	f := newFS(b)
	p := benchFile(b)
	for b.Loop() {
		o, err := f.Lookup(p, false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := o.ReadAll(1 << 20); err != nil {
			b.Fatal(err)
		}
		o.Close()
	}
}

// Describe walks to the entry itself and statx's that descriptor;
// LookupToRead walks to the parent and statx's the entry by name. Each
// closes what it holds, as a stat's reply is followed by the close.
func BenchmarkDescribe(b *testing.B) {
	benchFind(b, (*FS).Describe)
}

func BenchmarkLookupToRead(b *testing.B) {
	benchFind(b, (*FS).LookupToRead)
}

func benchFind(b *testing.B, find func(*FS, string, bool) (*Object, error)) {
	f := newFS(b)
	p := benchFile(b)
	for b.Loop() {
		o, err := find(f, p, false)
		if err != nil {
			b.Fatal(err)
		}
		o.Close()
	}
}

func BenchmarkOSReadFile4K(b *testing.B) {
	p := benchFile(b)
	for b.Loop() {
		if _, err := os.ReadFile(p); err != nil {
			b.Fatal(err)
		}
	}
}

// Under a non-root mount the anchor costs an extra openat2 and statx.
func BenchmarkLookupReadAll4KOnMount(b *testing.B) {
	requireRoot(b)
	d := tempDir(b)
	mountTmpfs(b, d, "size=1m")
	if err := os.WriteFile(d+"/f", make([]byte, 4096), 0o644); err != nil {
		b.Fatal(err)
	}
	f := newFS(b)
	for b.Loop() {
		o, err := f.Lookup(d+"/f", false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := o.ReadAll(1 << 20); err != nil {
			b.Fatal(err)
		}
		o.Close()
	}
}
