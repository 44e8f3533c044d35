package broker

import (
	"regexp"
	"testing"
)

func TestMandatoryList(t *testing.T) {
	m := newMandatoryList([]string{"/run/custom/rex.sock"}, []string{"/opt/rex/bin/rex-worker", "/srv/policies"})
	cases := []struct {
		action, path string
		deny         bool
	}{
		{"write", "/etc/sudoers", true},
		{"write", "/etc/sudoers.d/x", true},
		{"read", "/etc/sudoers", false},
		{"stat", "/proc/1/mem", false},
		{"read", "/proc/1/mem", true},
		{"read", "/proc/self/status", true},
		{"read", "/proc/1/status", false},
		{"write", "/home/alice/.bashrc", true},
		{"write", "/home/alice/bashrc", false},
		{"create", "/root/.ssh/id_rsa", true},
		{"write", "/srv/repo/.git/hooks/pre-commit", true},
		{"write", "/srv/repo/.git/config", false},
		{"delete", "/srv/repo/.git", true},
		{"write", "/srv/x/authorized_keys", true},
		{"write", "/opt/rex/bin/rex-worker", true},
		{"execute", "/opt/rex/bin/rex-worker", true},
		{"write", "/srv/policies/a.cedar", true},
		{"read", "/srv/policies/a.cedar", false},
		{"read", "/run/custom/rex.sock", true},
		{"delete", "/etc", true}, // holds /etc/sudoers
		{"move", "/home/alice", true},
		{"delete", "/srv/data", false},
		{"write", "/etc/sudoersX", false}, // exact components, no prefix match
		{"write", "/tmp/x", false},
	}
	for _, c := range cases {
		if got := m.denies(c.action, c.path); got != c.deny {
			t.Errorf("denies(%s, %s) = %v, want %v", c.action, c.path, got, c.deny)
		}
	}
}

func TestRedactor(t *testing.T) {
	r := &redactor{}
	for _, p := range []string{"Accepted password for %s from %s port %d ssh2", "load %f%%", "# not a pattern"} {
		r.res = append(r.res, mustCompile(t, printfPattern(p)))
	}
	in := "Accepted password for bob from 10.0.0.1 port 22 ssh2\nFailed password for root\nload 0.5%\nload x%\n"
	want := "Accepted password for bob from 10.0.0.1 port 22 ssh2\n[REDACTED]\nload 0.5%\n[REDACTED]\n"
	if got := string(r.apply([]byte(in))); got != want {
		t.Errorf("apply = %q\nwant    %q", got, want)
	}
	if got := string((&redactor{}).apply([]byte("a\nb"))); got != "[REDACTED]\n[REDACTED]" {
		t.Errorf("empty dictionary: %q", got)
	}
}

func mustCompile(t *testing.T, re string) *regexp.Regexp {
	t.Helper()
	c, err := regexp.Compile(re)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
