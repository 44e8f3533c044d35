package authz

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCanonical(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	// A path of exactly PathMax bytes: 16 components of 255 bytes plus
	// slashes is 4096.
	maxPath := strings.Repeat("/"+long(255), 16)
	tests := []struct {
		in, want string
		bad      string // substring of the error; "" means success
	}{
		{in: "/", want: "/"},
		{in: "/a/b", want: "/a/b"},
		{in: "/a//b", want: "/a/b"},
		{in: "//a///b//", want: "/a/b"},
		{in: "/a/./b", want: "/a/b"},
		{in: "/a/b/.", want: "/a/b"},
		{in: "/./.", want: "/"},
		{in: "/a/b/", want: "/a/b"},
		{in: "x/y", want: "/x/y"},
		{in: "./x", want: "/x"},
		{in: ".", want: "/"},
		{in: "/SRV/Data", want: "/SRV/Data"},
		{in: "/srv/%2e%2e/etc", want: "/srv/%2e%2e/etc"},
		{in: "/a/.../b", want: "/a/.../b"},
		{in: "/a/..b/c..", want: "/a/..b/c.."},
		{in: "/caf\u00e9", want: "/caf\u00e9"},   // NFC stays NFC
		{in: "/cafe\u0301", want: "/cafe\u0301"}, // NFD stays NFD: no folding
		{in: maxPath, want: maxPath},
		{in: "/" + long(255), want: "/" + long(255)},
		{in: "/a/../b", bad: `".."`},
		{in: "/srv/data/..", bad: `".."`},
		{in: "..", bad: `".."`},
		{in: "../etc/passwd", bad: `".."`},
		{in: "/a/b/../../..", bad: `".."`},
		{in: "", bad: "empty"},
		{in: "/etc/passwd\x00.txt", bad: "NUL"},
		{in: "a\x00/../../etc/shadow", bad: "NUL"},
		{in: "/bad\xff", bad: "UTF-8"},
		{in: "/" + long(256), bad: "component"},
		{in: maxPath + "/a", bad: "longer than 4096"},
		{in: strings.Repeat("/", 4097), bad: "longer than 4096"},
		// Relative input of 4096 bytes becomes 4097 with the leading slash.
		{in: long(255) + strings.Repeat("/"+long(255), 14) + "/" + long(254) + "/b", bad: "longer than 4096"},
	}
	for _, tt := range tests {
		got, err := Canonical(tt.in)
		name := tt.in
		if len(name) > 40 {
			name = name[:40] + "..."
		}
		if tt.bad != "" {
			if err == nil {
				t.Errorf("Canonical(%q) = %q, want error containing %q", name, got, tt.bad)
				continue
			}
			if !errors.Is(err, ErrInvalidPath) || !strings.Contains(err.Error(), tt.bad) {
				t.Errorf("Canonical(%q) error = %v, want ErrInvalidPath containing %q", name, err, tt.bad)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Canonical(%q) = %q, %v; want %q", name, got, err, tt.want)
		}
	}
}

// FuzzCanonical checks the properties that policies rely on: the result is
// absolute, free of empty, "." and ".." components, within the limits, and a
// fixed point; and no input that names a ".." component is accepted. Its seed
// corpus is testdata/fuzz/FuzzCanonical, run by every go test.
func FuzzCanonical(f *testing.F) {
	for _, p := range []string{"/", "/etc/passwd", "//etc", "/etc/", "/./a", "/a/..", "a/b", "/a\x00b", "/\xff", ""} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := Canonical(p)
		// The shortcut for a path already canonical agrees with the
		// spelling written out.
		spelt, serr := spell(p)
		if got != spelt || (err == nil) != (serr == nil) {
			t.Fatalf("Canonical(%q) = %q, %v; spell = %q, %v", p, got, err, spelt, serr)
		}
		if isCanonical(p) && (serr != nil || spelt != p) {
			t.Fatalf("isCanonical(%q), but spell = %q, %v", p, spelt, serr)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("error %v does not wrap ErrInvalidPath", err)
			}
			return
		}
		for _, comp := range strings.Split(p, "/") {
			if comp == ".." {
				t.Fatalf("Canonical(%q) accepted a .. component: %q", p, got)
			}
		}
		if !strings.HasPrefix(got, "/") || len(got) > PathMax || !utf8.ValidString(got) || strings.IndexByte(got, 0) >= 0 {
			t.Fatalf("Canonical(%q) = %q: not an absolute valid path", p, got)
		}
		if got != "/" {
			for _, comp := range strings.Split(got[1:], "/") {
				if comp == "" || comp == "." || comp == ".." || len(comp) > NameMax {
					t.Fatalf("Canonical(%q) = %q: bad component %q", p, got, comp)
				}
			}
		}
		again, err := Canonical(got)
		if err != nil || again != got {
			t.Fatalf("Canonical not idempotent: %q -> %q -> %q, %v", p, got, again, err)
		}
	})
}
