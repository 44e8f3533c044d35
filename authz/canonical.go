package authz

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits of Linux paths; a longer path could never be opened, so it is
// refused before any entity is built from it.
const (
	PathMax = 4096 // bytes in a whole path
	NameMax = 255  // bytes in one component
)

// ErrInvalidPath is wrapped by every error of Canonical.
var ErrInvalidPath = errors.New("invalid path")

func invalidPath(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidPath, fmt.Sprintf(format, args...))
}

// Canonical returns the one spelling of p that entities are built from, so
// that no other spelling of a path can dodge a policy written for it.
//
// A relative path is taken relative to "/" (the script's working
// directory). Repeated slashes and "." components are dropped, and so is a
// trailing slash except for "/" itself. A ".." component is refused rather
// than resolved: resolving it lexically would disagree with the kernel
// whenever a symlink is involved. The bytes are kept exactly as given: no case
// or Unicode folding and no percent-decoding, because the kernel does none.
func Canonical(p string) (string, error) {
	if isCanonical(p) {
		return p, nil
	}
	return spell(p)
}

// isCanonical reports whether p is already its canonical spelling, as
// nearly every path a script passes is: then Canonical returns p itself and
// allocates nothing, where spelling it out again cost two allocations per
// call (the broker canonicalises each path twice, and stat's whole reply
// path takes 10 µs). FuzzCanonical checks that it agrees with spell.
func isCanonical(p string) bool {
	if p == "/" {
		return true
	}
	if len(p) < 2 || len(p) > PathMax || p[0] != '/' {
		return false
	}
	start := 1
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			if p[i] == 0 {
				return false
			}
			continue
		}
		switch c := p[start:i]; {
		case c == "" || c == "." || c == ".." || len(c) > NameMax:
			return false
		}
		start = i + 1
	}
	return utf8.ValidString(p)
}

// spell is Canonical written out: it checks p and builds the canonical
// spelling component by component.
func spell(p string) (string, error) {
	switch {
	case p == "":
		return "", invalidPath("empty path")
	case len(p) > PathMax:
		return "", invalidPath("longer than %d bytes", PathMax)
	case strings.IndexByte(p, 0) >= 0:
		return "", invalidPath("contains a NUL byte")
	case !utf8.ValidString(p):
		return "", invalidPath("not valid UTF-8")
	}
	var b strings.Builder
	b.Grow(len(p) + 1)
	for rest := p; rest != ""; {
		var comp string
		comp, rest, _ = strings.Cut(rest, "/")
		switch {
		case comp == "" || comp == ".":
			continue
		case comp == "..":
			return "", invalidPath(`".." components are not allowed`)
		case len(comp) > NameMax:
			return "", invalidPath("a component is longer than %d bytes", NameMax)
		}
		b.WriteByte('/')
		b.WriteString(comp)
	}
	if b.Len() == 0 {
		return "/", nil
	}
	if b.Len() > PathMax {
		return "", invalidPath("longer than %d bytes", PathMax)
	}
	return b.String(), nil
}

// parentDir returns the directory that holds the canonical path p, and false
// for "/".
func parentDir(p string) (string, bool) {
	if p == "/" {
		return "", false
	}
	i := strings.LastIndexByte(p, '/')
	if i == 0 {
		return "/", true
	}
	return p[:i], true
}
