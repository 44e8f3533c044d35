package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rex-sh/rex/internal/testutil"
)

// File-system attacks F01–F14 of SECURITY-TESTS.md, each through the real
// rex-exec, broker code and sandboxed worker (standalone mode), on the
// fixture tree of scenarioTree. Policies and scripts use {{root}}.

// attackPolicy grants read on {{root}}/data and everything on
// {{root}}/data/w, the secret file forbidden.
const attackPolicy = `
@id("data-dir-open")
permit(principal, action == file_system::Action::"open", resource == file_system::Dir::"{{root}}/data");
@id("data-read")
permit(principal, action in [file_system::Action::"open", file_system::Action::"read", file_system::Action::"stat"],
       resource in file_system::Dir::"{{root}}/data");
@id("data-write")
permit(principal, action in file_system::Action::"SafeIO", resource in file_system::Dir::"{{root}}/data/w");
@id("no-secret")
forbid(principal, action, resource == file_system::File::"{{root}}/data/secret");
`

// probeFn is prepended to attack scripts: probe(f) is f's value or
// "ERR:" and the error message.
const probeFn = `probe := func(f) { return try(f, func(e) { return "ERR:" + e.message() }) }
`

// attack runs script under policy against root and returns the outcome;
// the script's output is decoded into out when out is not nil.
func attack(t *testing.T, root, policy, script string, out any, extra ...string) outcome {
	t.Helper()
	sub := func(s string) string { return strings.ReplaceAll(s, "{{root}}", root) }
	pol := filepath.Join(t.TempDir(), "policy.cedar")
	must(t, os.WriteFile(pol, []byte(sub(policy)), 0o644))
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	o := rexExec(t, probeFn+sub(script), []string{"REX_AUDIT_LOG=" + audit},
		append([]string{"--policy", pol, "--output", "json"}, extra...)...)
	o.audit = readAudit(t, audit)
	if out != nil {
		if o.res.Status != "SUCCESS" {
			t.Fatalf("script failed: %s\nstderr: %s", o.raw, o.err)
		}
		if err := json.Unmarshal(o.res.Output, out); err != nil {
			t.Fatalf("output %s: %v", o.res.Output, err)
		}
	}
	for _, s := range []string{"TOPSECRET", "OUTSIDE", "root:x:0:0", "root:*:", "root:!"} {
		if strings.Contains(o.raw, s) {
			t.Fatalf("secret %q leaked: %s", s, o.raw)
		}
	}
	return o
}

func attackTree(t *testing.T) string {
	t.Helper()
	requireSandbox(t)
	root := scenarioTree(t)
	must(t, os.MkdirAll(filepath.Join(root, "data/w"), 0o755))
	return root
}

// allErrors fails unless every result is an error; it returns them.
func allErrors(t *testing.T, results map[string]string) {
	t.Helper()
	for k, v := range results {
		if !strings.HasPrefix(v, "ERR:") {
			t.Errorf("%s succeeded: %q", k, v)
		}
	}
}

func TestF01_LexicalTraversal(t *testing.T) {
	root := attackTree(t)
	long := "{{root}}/data/" + strings.Repeat("a/", 2100) + "x"
	var res map[string]string
	attack(t, root, attackPolicy, `
paths := ["{{root}}/data/../outside/secret", "{{root}}/data/./../outside/secret", "//{{root}}/outside/secret",
  "{{root}}/data/..", "{{root}}/data/../", "../outside/secret", "{{root}}/data/%2e%2e/outside/secret",
  "`+long+`", "{{root}}/data/`+strings.Repeat("n", 300)+`", "{{root}}/data/hello.txt\x00/../../outside/secret"]
r := {}
for i, p := range paths { r[string(i)] = probe(func() { return fs.cat(p) }) }
r`, &res)
	allErrors(t, res)
	for k, v := range res {
		if k != "2" && k != "6" && !strings.Contains(v, "invalid path") && !strings.Contains(v, "Permission denied") {
			t.Errorf("path %s: %q, want a rejection or a denial", k, v)
		}
	}
	if !strings.Contains(res["6"], "%2e%2e") {
		t.Errorf("%%2e%%2e must be taken literally: %q", res["6"])
	}
}

func TestF02_PrefixConfusion(t *testing.T) {
	root := attackTree(t)
	for _, d := range []string{"data2", "dataX"} {
		must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
		must(t, os.WriteFile(filepath.Join(root, d, "secret"), []byte("OUTSIDE\n"), 0o644))
	}
	var res map[string]string
	attack(t, root, attackPolicy, `{
  "data2": probe(func() { return fs.cat("{{root}}/data2/secret") }),
  "dataX": probe(func() { return fs.cat("{{root}}/dataX/secret") }),
  "ls": probe(func() { return fs.ls("{{root}}/data2") }),
  "find": probe(func() { return fs.find("{{root}}/dataX", "*") }),
}`, &res)
	allErrors(t, res)
}

func TestF03_SymlinkEscapes(t *testing.T) {
	root := attackTree(t)
	d := filepath.Join(root, "data")
	must(t, os.Symlink(filepath.Join(root, "outside"), filepath.Join(d, "dirlink")))
	must(t, os.MkdirAll(filepath.Join(d, "x/y"), 0o755))
	must(t, os.Symlink("../../..", filepath.Join(d, "x/y/up")))
	must(t, os.Symlink("/proc/self/root", filepath.Join(d, "procroot")))
	must(t, os.Symlink("escape", filepath.Join(d, "chain")))
	var res map[string]string
	attack(t, root, attackPolicy, `
r := {}
for _, follow := range [false, true] {
  f := string(follow)
  r["leaf "+f] = probe(func() { return fs.cat("{{root}}/data/escape", {follow: follow}) })
  r["chain "+f] = probe(func() { return fs.cat("{{root}}/data/chain", {follow: follow}) })
  r["intermediate "+f] = probe(func() { return fs.cat("{{root}}/data/dirlink/secret", {follow: follow}) })
  r["trailing slash "+f] = probe(func() { return fs.ls("{{root}}/data/dirlink/") })
  r["relative "+f] = probe(func() { return fs.cat("{{root}}/data/x/y/up/outside/secret", {follow: follow}) })
  r["proc root "+f] = probe(func() { return fs.cat("{{root}}/data/procroot/etc/shadow", {follow: follow}) })
  r["open "+f] = probe(func() { return fs.open("{{root}}/data/escape", {follow: follow}).read() })
  r["stat "+f] = probe(func() { return fs.stat("{{root}}/data/dirlink/secret", {follow: follow}) })
}
r`, &res)
	allErrors(t, res)
	if !strings.Contains(res["leaf true"], `Dir::"`+root+`/outside"`) {
		t.Errorf("followed leaf must be denied on its target: %q", res["leaf true"])
	}
	if !strings.Contains(res["intermediate true"], root+`/outside`) {
		t.Errorf("a symlinked directory must be authorised as where it leads: %q", res["intermediate true"])
	}
}

// TestF04_RenameExchangeRace mirrors the kernel's rename_attack selftest: a
// host helper exchanges {{root}}/data/a/c with {{root}}/outside/b as fast as
// it can while the script reads, following, a link inside c whose text is
// "../x". Resolved textually (rex) it names data/a/x ("INSIDE"); resolved
// physically while c sits at outside/b it would be outside/x (the
// sentinel). Attempts: 10 000, or 100 000 with REX_LONG_RACES=1.
func TestF04_RenameExchangeRace(t *testing.T) {
	root := attackTree(t)
	n := 10000
	if os.Getenv("REX_LONG_RACES") == "1" {
		n = 100000
	}
	a, b := filepath.Join(root, "data/a"), filepath.Join(root, "outside/b")
	must(t, os.MkdirAll(filepath.Join(a, "c"), 0o755))
	must(t, os.MkdirAll(b, 0o755))
	must(t, os.WriteFile(filepath.Join(a, "x"), []byte("INSIDE"), 0o644))
	must(t, os.WriteFile(filepath.Join(root, "outside/x"), []byte("SENTINEL"), 0o644))
	for _, d := range []string{filepath.Join(a, "c"), b} {
		must(t, os.Symlink("../x", filepath.Join(d, "lnk")))
		must(t, os.WriteFile(filepath.Join(d, "f"), []byte("F"), 0o644))
	}
	var stop atomic.Bool
	var swaps atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop.Store(true)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(a, "c"), unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
				t.Errorf("exchange: %v", err)
				return
			}
			swaps.Add(1)
		}
	}()
	var res struct{ Escapes, Inside, Errors int }
	start := time.Now()
	attack(t, root, attackPolicy, fmt.Sprintf(`
esc := 0
errs := 0
ins := 0
for i := 0; i < %d; i++ {
  v := probe(func() { return fs.cat("{{root}}/data/a/c/lnk", {follow: true}) })
  w := probe(func() { return fs.cat("{{root}}/data/a/c/f") })
  for _, s := range [v, w] {
    if s == "SENTINEL" { esc += 1 } else if strings.has_prefix(s, "ERR:") { errs += 1 } else { ins += 1 }
  }
}
{"escapes": esc, "inside": ins, "errors": errs}`, n/2), &res, "--timeout", "10m")
	stop.Store(true)
	wg.Wait()
	t.Logf("%d attempts in %v with %d exchanges: %d inside, %d errors, %d escapes",
		n, time.Since(start).Round(time.Millisecond), swaps.Load(), res.Inside, res.Errors, res.Escapes)
	if res.Escapes != 0 {
		t.Fatalf("%d escapes", res.Escapes)
	}
	if res.Inside+res.Errors != n || swaps.Load() < 100 {
		t.Fatalf("the race did not run: %+v, %d exchanges", res, swaps.Load())
	}
}

// TestF05_LeafSwapRace flips {{root}}/data/w/f between a regular file and
// a symlink to the sentinel while the script reads and appends to it.
func TestF05_LeafSwapRace(t *testing.T) {
	root := attackTree(t)
	w := filepath.Join(root, "data/w")
	sentinel := filepath.Join(root, "outside/secret")
	must(t, os.WriteFile(filepath.Join(w, "f"), []byte("F"), 0o644))
	var stop atomic.Bool
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop.Store(true)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			tmp := filepath.Join(w, ".swap")
			os.Remove(tmp)
			var err error
			if i%2 == 0 {
				err = os.Symlink(sentinel, tmp)
			} else {
				err = os.WriteFile(tmp, []byte("F"), 0o644)
			}
			if err == nil {
				err = os.Rename(tmp, filepath.Join(w, "f"))
			}
			if err != nil {
				t.Errorf("swap: %v", err)
				return
			}
		}
	}()
	var res map[string]int
	attack(t, root, attackPolicy, `
leaks := 0
errs := 0
ok := 0
for i := 0; i < 1500; i++ {
  for _, v := range [probe(func() { return fs.cat("{{root}}/data/w/f") }),
                     probe(func() { return fs.cat("{{root}}/data/w/f", {follow: true}) }),
                     probe(func() { return fs.write("{{root}}/data/w/f", "A", {append: true}) })] {
    if type(v) == "string" && strings.contains(v, "OUTSIDE") { leaks += 1 }
    if type(v) == "string" && strings.has_prefix(v, "ERR:") { errs += 1 } else { ok += 1 }
  }
}
{"read": ok, "errors": errs, "leaks": leaks}`, &res)
	stop.Store(true)
	wg.Wait()
	t.Logf("leaf swap: %v", res)
	if got, _ := os.ReadFile(sentinel); string(got) != "OUTSIDE\n" {
		t.Fatalf("sentinel modified: %q", got)
	}
	if res["leaks"] != 0 || res["read"] == 0 {
		t.Fatalf("leaf swap: %v", res)
	}
}

// TestF06_ProcMagicLinks: even with a (mis)grant of everything under /proc
// and /dev, magic links and the broker's own /proc entries stay shut.
func TestF06_ProcMagicLinks(t *testing.T) {
	root := attackTree(t)
	policy := attackPolicy + `
@id("misgrant")
permit(principal, action, resource in file_system::Dir::"/proc");
@id("misgrant-dev")
permit(principal, action, resource in file_system::Dir::"/dev");
`
	var res map[string]string
	attack(t, root, policy, `
r := {}
for _, follow := range [false, true] {
  for _, p := range ["/proc/self/root/etc/shadow", "/proc/self/fd/3", "/proc/1/cwd/etc/shadow", "/proc/self/mem",
               "/proc/self/environ", "/dev/fd/3", "/proc/1/root/etc/passwd", "/proc/thread-self/environ", "/proc/1/mem"] {
    r[p+" "+string(follow)] = probe(func() { return fs.cat(p, {follow: follow}) })
  }
}
r["write mem"] = probe(func() { return fs.write("/proc/1/mem", "x") })
r`, &res)
	allErrors(t, res)
}

// TestF07_HardLinkToSentinel: the chosen behaviour is that rex never
// modifies a file in place (append, open for writing, chmod, chown,
// setxattr) through a name of an inode with more than one link; a
// replacing fs.write is allowed, because it puts a new inode under the
// granted name and leaves the other names, and the sentinel, alone. rex
// has no hard-link operation, so link-through-symlink does not arise.
func TestF07_HardLinkToSentinel(t *testing.T) {
	root := attackTree(t)
	sentinel := filepath.Join(root, "outside/sentinel")
	must(t, os.WriteFile(sentinel, []byte("SENTINEL\n"), 0o644))
	must(t, os.Link(sentinel, filepath.Join(root, "data/w/h")))
	var res map[string]string
	attack(t, root, attackPolicy, `{
  "append": probe(func() { return fs.write("{{root}}/data/w/h", "pwn", {append: true}) }),
  "open": probe(func() { return fs.open("{{root}}/data/w/h", {write: true}).write("pwn") }),
  "chmod": probe(func() { return fs.chmod("{{root}}/data/w/h", 0777) }),
  "chown": probe(func() { return fs.chown("{{root}}/data/w/h", "nobody", nil) }),
  "xattr": probe(func() { return fs.setxattr("{{root}}/data/w/h", "user.x", "y") }),
}`, &res)
	allErrors(t, res)
	for k, v := range res {
		if !strings.Contains(v, "hard links") {
			t.Errorf("%s: %q, want the hard-link refusal", k, v)
		}
	}
	var n int
	attack(t, root, attackPolicy, `fs.write("{{root}}/data/w/h", "replaced")`, &n)
	st, err := os.Stat(sentinel)
	must(t, err)
	got, _ := os.ReadFile(sentinel)
	h, _ := os.ReadFile(filepath.Join(root, "data/w/h"))
	if string(got) != "SENTINEL\n" || st.Mode().Perm() != 0o644 || st.Sys().(*syscall.Stat_t).Nlink != 1 || string(h) != "replaced" {
		t.Fatalf("sentinel %q mode %v nlink %d; h %q", got, st.Mode(), st.Sys().(*syscall.Stat_t).Nlink, h)
	}
}

// TestF08_ReadOnlyFDUpgrade: a descriptor granted read-only cannot be
// written through the file object; the kernel refuses it anyway (O_RDONLY).
func TestF08_ReadOnlyFDUpgrade(t *testing.T) {
	root := attackTree(t)
	var res map[string]string
	attack(t, root, attackPolicy, `
f := fs.open("{{root}}/data/hello.txt")
{
  "write": probe(func() { return f.write("pwned") }),
  "read": probe(func() { return string(f.read()) }),
  "reopen": probe(func() { return fs.open("/proc/self/fd/3", {write: true}) }),
  "os": probe(func() { return os.write_file("{{root}}/data/hello.txt", "pwned") }),
}`, &res)
	if res["read"] != "hello world\n" {
		t.Errorf("read = %q", res["read"])
	}
	delete(res, "read")
	allErrors(t, res)
	if got, _ := os.ReadFile(filepath.Join(root, "data/hello.txt")); string(got) != "hello world\n" {
		t.Fatalf("file modified: %q", got)
	}
}

// TestF09_ObjectTypes: directories, FIFOs, sockets and devices inside the
// grant are never opened for content, and the broker never blocks.
func TestF09_ObjectTypes(t *testing.T) {
	root := attackTree(t)
	d := filepath.Join(root, "data")
	must(t, unix.Mkfifo(filepath.Join(d, "fifo"), 0o644))
	l, err := (&netListen{}).unix(filepath.Join(d, "sock"))
	must(t, err)
	defer l.Close()
	if os.Geteuid() == 0 {
		must(t, unix.Mknod(filepath.Join(d, "zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))))
	}
	var res map[string]string
	o := attack(t, root, attackPolicy, `
r := {}
for _, name := range ["sub", "fifo", "sock", "zero"] {
  p := "{{root}}/data/" + name
  r["cat "+name] = probe(func() { return fs.cat(p) })
  r["open "+name] = probe(func() { return fs.open(p) })
  r["write "+name] = probe(func() { return fs.open("{{root}}/data/w/../"+name, {write: true}) })
}
r`, &res, "--timeout", "20s")
	allErrors(t, res)
	if o.took > 10*time.Second {
		t.Fatalf("took %v: the broker blocked", o.took)
	}
}

type netListen struct{}

func (netListen) unix(p string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: p}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.Listen(fd, 1); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), p), nil
}

// TestF10_SparseGiant: a 50 GB sparse file is refused by fs.cat with a
// limit error that points to fs.open, after reading nothing.
func TestF10_SparseGiant(t *testing.T) {
	root := attackTree(t)
	p := filepath.Join(root, "data/huge")
	f, err := os.Create(p)
	must(t, err)
	must(t, f.Truncate(50<<30))
	f.Close()
	o := attack(t, root, attackPolicy, `fs.cat("{{root}}/data/huge")`, nil)
	wantStatus(t, o, "ERROR", "RESOURCE_LIMIT_EXCEPTION", 5)
	if !strings.Contains(o.res.Error.Message, "fs.open") || o.took > 5*time.Second {
		t.Fatalf("message %q, took %v", o.res.Error.Message, o.took)
	}
	var res map[string]string
	attack(t, root, attackPolicy, `{
  "read_bytes": probe(func() { return fs.read_bytes("{{root}}/data/huge") }),
  "grep": probe(func() { return fs.grep("x", "{{root}}/data/huge") }),
  "cp": probe(func() { return fs.cp("{{root}}/data/huge", "{{root}}/data/w/copy") }),
}`, &res)
	allErrors(t, res)
}

// TestF11_GzipBomb: 64 MiB of zeros in about 64 KiB of gzip is refused by
// the output and ratio caps of fs.zcat and fs.zgrep.
func TestF11_GzipBomb(t *testing.T) {
	root := attackTree(t)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zero := make([]byte, 1<<20)
	for range 64 {
		zw.Write(zero)
	}
	zw.Close()
	must(t, os.WriteFile(filepath.Join(root, "data/bomb.gz"), buf.Bytes(), 0o644))
	o := attack(t, root, attackPolicy, `fs.zcat("{{root}}/data/bomb.gz")`, nil)
	wantStatus(t, o, "ERROR", "RESOURCE_LIMIT_EXCEPTION", 5)
	if !strings.Contains(o.res.Error.Message, "ratio") {
		t.Errorf("message %q", o.res.Error.Message)
	}
	o = attack(t, root, attackPolicy, `fs.zgrep("x", "{{root}}/data/bomb.gz")`, nil)
	wantStatus(t, o, "ERROR", "RESOURCE_LIMIT_EXCEPTION", 5)
}

// TestF12_MandatoryDeny: with a policy that allows every file_system
// action on every path, the mandatory deny list still refuses, with the
// uniform denial and the rex-mandatory-deny policy id, and nothing is
// written.
func TestF12_MandatoryDeny(t *testing.T) {
	root := attackTree(t)
	everything := `@id("everything") permit(principal, action in file_system::Action::"SafeIO", resource);`
	worker := filepath.Join(testutil.Binaries(t), "rex-worker")
	targets := []string{
		"/etc/sudoers.d/rex-f12-test", "/etc/cron.d/rex-f12-test", "/etc/systemd/system/rex-f12-test.service",
		"/root/.bashrc", "/home/rex-f12-test/.profile", root + "/repo/.git/hooks/pre-commit",
		root + "/home/.ssh/authorized_keys", worker, "/proc/1/mem", "/run/rex/rex-f12-test",
	}
	before := map[string][]byte{}
	for _, p := range targets {
		before[p], _ = os.ReadFile(p)
	}
	must(t, os.MkdirAll(filepath.Join(root, "repo/.git/hooks"), 0o755))
	quoted, _ := json.Marshal(targets)
	var res []string
	o := attack(t, root, everything, `
r := []
for _, p := range `+string(quoted)+` {
  r.append(probe(func() { return fs.write(p, "# rex F12 test\n") }))
}
r.append(probe(func() { return fs.chmod("`+worker+`", 0777) }))
r.append(probe(func() { return fs.rm("`+root+`/repo/.git", {recursive: true}) }))
r.append(probe(func() { return fs.mv("/etc/cron.d", "`+root+`/cron") }))
r`, &res)
	for i, v := range res {
		if !strings.HasPrefix(v, "ERR:Permission denied") {
			t.Errorf("request %d: %q, want a denial", i, v)
		}
	}
	for p, b := range before {
		if now, _ := os.ReadFile(p); !bytes.Equal(now, b) {
			t.Errorf("%s changed", p)
		}
	}
	if len(o.res.Denials) != len(res) {
		t.Fatalf("%d denials for %d requests", len(o.res.Denials), len(res))
	}
	for _, d := range o.res.Denials {
		if strings.Join(d.PolicyIDs, ",") != "rex-mandatory-deny" {
			t.Errorf("denial %+v lacks rex-mandatory-deny", d)
		}
	}
	audited := 0
	for _, r := range o.audit {
		if ids, _ := json.Marshal(r["policy_ids"]); strings.Contains(string(ids), "rex-mandatory-deny") {
			audited++
		}
	}
	if audited < len(res) {
		t.Errorf("%d mandatory denials audited, want %d", audited, len(res))
	}
}

// TestF13_MountBoundary: a host actor bind-mounts a directory from outside
// the grant under it; tree operations stop at the mount (EXDEV for a
// recursive removal, left out of walks) and the outside stays untouched.
func TestF13_MountBoundary(t *testing.T) {
	testutil.RequireRoot(t)
	root := attackTree(t)
	mnt := filepath.Join(root, "data/w/mnt")
	must(t, os.MkdirAll(mnt, 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "outside/tree"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "outside/tree/keep"), []byte("KEEP"), 0o644))
	if err := unix.Mount(filepath.Join(root, "outside/tree"), mnt, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	var res map[string]any
	attack(t, root, attackPolicy, `{
  "find": fs.find("{{root}}/data/w", "*"),
  "rm": probe(func() { return fs.rm("{{root}}/data/w", {recursive: true}) }),
}`, &res)
	for _, p := range res["find"].([]any) {
		if strings.HasPrefix(p.(string), mnt+"/") {
			t.Errorf("walk crossed the mount: %s", p)
		}
	}
	if rm, _ := res["rm"].(string); !strings.HasPrefix(rm, "ERR:") {
		t.Errorf("recursive removal across a mount succeeded: %v", res["rm"])
	}
	if b, err := os.ReadFile(filepath.Join(root, "outside/tree/keep")); err != nil || string(b) != "KEEP" {
		t.Fatalf("outside file lost: %q %v", b, err)
	}
}

// TestF14_Oracles: a forbidden file that exists and one that does not give
// the same error, through every function; paths match byte for byte (no
// case or Unicode folding); the two take about the same time.
func TestF14_Oracles(t *testing.T) {
	root := attackTree(t)
	var res map[string][]string
	attack(t, root, attackPolicy, `
fns := {
  "cat": func(p) { return fs.cat(p) }, "stat": func(p) { return fs.stat(p) }, "exists": func(p) { return fs.exists(p) },
  "open": func(p) { return fs.open(p) }, "ls": func(p) { return fs.ls(p) }, "write": func(p) { return fs.write(p, "x") },
  "rm": func(p) { return fs.rm(p) }, "readlink": func(p) { return fs.readlink(p) }, "chmod": func(p) { return fs.chmod(p, 0600) },
  "grep": func(p) { return fs.grep("x", p) }, "cp": func(p) { return fs.cp(p, "{{root}}/data/w/c") },
  "find": func(p) { return fs.find(p, "*") }, "touch": func(p) { return fs.touch(p) },
}
r := {}
for name, fn := range fns {
  r[name] = [probe(func() { return fn("{{root}}/outside/secret") }), probe(func() { return fn("{{root}}/outside/missing") })]
}
r["case"] = [probe(func() { return fs.cat("{{root}}/DATA/hello.txt") }), probe(func() { return fs.cat("{{root}}/data/HELLO.txt") }),
             probe(func() { return fs.cat("{{root}}/data/hello.txt ") }), probe(func() { return fs.cat("{{root}}/data/hello.txt.") })]
r`, &res)
	for name, v := range res {
		if name == "case" {
			continue
		}
		if !strings.HasPrefix(v[0], "ERR:Permission denied") || strings.ReplaceAll(v[0], "secret", "missing") != v[1] {
			t.Errorf("%s: existing %q vs missing %q", name, v[0], v[1])
		}
	}
	for _, v := range res["case"] {
		if !strings.HasPrefix(v, "ERR:") {
			t.Errorf("folded path read: %q", v)
		}
	}
	// Timing: the median of many denials of each kind, measured in the
	// script; a gross difference (a lookup error reported before the
	// decision) would show as a factor, not as noise.
	var ms []int
	attack(t, root, attackPolicy, `
timeit := func(p) {
  ts := []
  for i := 0; i < 301; i++ {
    t0 := time.now()
    try(func() { return fs.cat(p) }, func(e) { return nil })
    ts.append(int(time.since(t0) * 1000000000))
  }
  return sorted(ts)[150]
}
[timeit("{{root}}/outside/secret"), timeit("{{root}}/outside/missing"), timeit("{{root}}/outside/secret"), timeit("{{root}}/outside/missing")]`, &ms)
	ex, mi := min(ms[0], ms[2]), min(ms[1], ms[3])
	t.Logf("median denial: existing %v, missing %v", time.Duration(ex), time.Duration(mi))
	if ex > 3*mi || mi > 3*ex {
		t.Errorf("timing oracle: existing %v vs missing %v", time.Duration(ex), time.Duration(mi))
	}
}

// TestRedactedReadDictionary: with read denied and redacted_read allowed,
// lines matching the operator's dictionary (REX_REDACTION_DICT in
// standalone mode, --redaction-dict for rex-broker) come back, the others
// as [REDACTED].
func TestRedactedReadDictionary(t *testing.T) {
	root := attackTree(t)
	must(t, os.WriteFile(filepath.Join(root, "data/auth.log"),
		[]byte("Accepted publickey for bob from 10.0.0.1 port 22\npassword=hunter2\n"), 0o644))
	dict := filepath.Join(t.TempDir(), "redaction.conf")
	must(t, os.WriteFile(dict, []byte("# sshd\nAccepted %s for %s from %s port %d\n"), 0o644))
	pol := filepath.Join(t.TempDir(), "p.cedar")
	must(t, os.WriteFile(pol, []byte(strings.ReplaceAll(`
permit(principal, action == file_system::Action::"open", resource == file_system::Dir::"{{root}}/data");
permit(principal, action in [file_system::Action::"open", file_system::Action::"redacted_read"],
       resource == file_system::File::"{{root}}/data/auth.log");`, "{{root}}", root)), 0o644))
	o := rexExec(t, fmt.Sprintf("fs.cat(%q)", root+"/data/auth.log"), []string{"REX_REDACTION_DICT=" + dict},
		"--policy", pol, "--output", "json")
	wantStatus(t, o, "SUCCESS", "", 0)
	var got string
	must(t, json.Unmarshal(o.res.Output, &got))
	if want := "Accepted publickey for bob from 10.0.0.1 port 22\n[REDACTED]\n"; got != want {
		t.Fatalf("redacted read = %q, want %q", got, want)
	}
	if strings.Contains(o.raw, "hunter2") || len(o.res.Denials) != 0 {
		t.Fatalf("leak or denial: %s", o.raw)
	}
}
