package host

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// Every spelling of an address parses to the address itself, so that a
// policy and the dial see one canonical form.
func TestParseIPSpellings(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1": "127.0.0.1", "2130706433": "127.0.0.1", "0x7f.1": "127.0.0.1", "017700000001": "127.0.0.1",
		"0x7f000001": "127.0.0.1", "127.1": "127.0.0.1", "127.0.1": "127.0.0.1", "0177.0.0.01": "127.0.0.1",
		"[::1]": "::1", "::ffff:127.0.0.1": "127.0.0.1", "[::ffff:7f00:1]": "127.0.0.1", "0": "0.0.0.0",
		"0.0.0.0": "0.0.0.0", "169.254.169.254": "169.254.169.254", "[fd00::1]": "fd00::1", "1.2.3.4.": "1.2.3.4",
	} {
		ip, ok, err := ParseIP(in)
		if err != nil || !ok || ip.String() != want {
			t.Errorf("ParseIP(%q) = %v, %v, %v; want %s", in, ip, ok, err, want)
		}
	}
	for _, name := range []string{"api.example.com", "localhost", "1.2.3.4.5", "256.1.1.1", "1.2.3.0x100", "08.1.1.1", "example.123x"} {
		if ip, ok, err := ParseIP(name); ok || err != nil {
			t.Errorf("ParseIP(%q) = %v, %v, %v; want a name", name, ip, ok, err)
		}
	}
	if _, _, err := ParseIP("[fe80::1%eth0]"); err == nil {
		t.Error("an address with a zone was accepted")
	}
}

func TestSpecial(t *testing.T) {
	for _, s := range []string{"127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0",
		"100.64.0.1", "224.0.0.1", "::1", "::", "fd00::1", "fe80::1", "::ffff:10.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1"} {
		if !Special(netip.MustParseAddr(s)) {
			t.Errorf("%s is not special", s)
		}
	}
	for _, s := range []string{"1.1.1.1", "93.184.216.34", "2606:4700:4700::1111"} {
		if Special(netip.MustParseAddr(s)) {
			t.Errorf("%s is special", s)
		}
	}
}

func TestSysctlPath(t *testing.T) {
	for in, want := range map[string]string{
		"net.ipv4.ip_forward": "/proc/sys/net/ipv4/ip_forward", "net/ipv4/ip_forward": "/proc/sys/net/ipv4/ip_forward",
		"/proc/sys/kernel/ostype": "/proc/sys/kernel/ostype", "net.ipv4.conf.eth0/100.forwarding": "/proc/sys/net/ipv4/conf/eth0.100/forwarding",
	} {
		if got, err := SysctlPath(in); err != nil || got != want {
			t.Errorf("SysctlPath(%q) = %q, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "kernel/../../etc/shadow", "kernel..ostype", "/proc/sys/../self/environ", "kernel.os type", "kernel.ostype\x00"} {
		if got, err := SysctlPath(bad); err == nil {
			t.Errorf("SysctlPath(%q) = %q, want an error", bad, got)
		}
	}
}

// Files sort by name across directories; an earlier directory hides the
// same name in a later one; /etc/sysctl.conf comes last.
func TestSysctlConfig(t *testing.T) {
	d := t.TempDir()
	etc, lib := filepath.Join(d, "etc"), filepath.Join(d, "lib")
	write := func(p, s string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mustWrite(t, p, s)
	}
	write(filepath.Join(lib, "10-a.conf"), "a = lib\n")
	write(filepath.Join(etc, "10-a.conf"), "# comment\na = etc\n; other\n-opt.key = 1\nglob.* = 2\n")
	write(filepath.Join(lib, "05-b.conf"), "b=1\n")
	write(filepath.Join(d, "sysctl.conf"), "c = last\n")
	got, err := SysctlConfig([]string{etc, lib}, filepath.Join(d, "sysctl.conf"))
	noErr(t, err)
	var keys []string
	for _, s := range got {
		keys = append(keys, s.Key+"="+s.Value)
	}
	if want := []string{"b=1", "a=etc", "opt.key=1", "c=last"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("settings = %v, want %v", keys, want)
	}
	if !got[2].Optional || got[1].Optional {
		t.Errorf("optional flags wrong: %+v", got)
	}
}

func TestParseStat(t *testing.T) {
	p, err := parseStat(42, []byte("42 (a (weird) name) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 12345 1000 3 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0"))
	noErr(t, err)
	if p.Name != "a (weird) name" || p.PPID != 7 || p.State != "S" || p.Start != 12345 || p.RSSKB != 3*int64(os.Getpagesize())/1024 {
		t.Errorf("parseStat = %+v", p)
	}
}

func TestProcAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:0050":                         "127.0.0.1:80",
		"00000000000000000000000001000000:1F90": "[::1]:8080",
		"0000000000000000FFFF00000100007F:0016": "127.0.0.1:22",
	} {
		if got := procAddr(in); got != want {
			t.Errorf("procAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

// A pidfd pins its process: the figures are the process's own, and the
// signal reaches it.
func TestOpenPIDSelfAndGone(t *testing.T) {
	p, err := OpenPID(os.Getpid())
	noErr(t, err)
	defer p.Close()
	if p.Proc.PID != os.Getpid() || p.Proc.Start == 0 || p.Proc.Name == "" {
		t.Errorf("OpenPID(self) = %+v", p.Proc)
	}
	if err := p.Signal(0); err != nil {
		t.Errorf("signal 0 to self: %v", err)
	}
	if _, err := OpenPID(1 << 30); Code(err) != 2 {
		t.Errorf("OpenPID(huge) = %v, want not found", err)
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
