package main

import (
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// watchPolicies calls reload after the policy files under path change: a
// *.cedar file or entities.json written, created, renamed or removed. Bursts
// of events (an editor's save, a deploy tool writing several files) are
// folded into one reload after they settle, so a half-written set is not
// loaded when a quieter moment is coming.
func watchPolicies(path string, isDir bool, reload func(why string), logf func(string, ...any)) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return err
	}
	dir, only := path, ""
	if !isDir {
		dir, only = filepath.Dir(path), filepath.Base(path)
	}
	const mask = unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_DELETE | unix.IN_CREATE | unix.IN_ATTRIB
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		return err
	}
	relevant := func(name string) bool {
		if only != "" {
			return name == only
		}
		return strings.HasSuffix(name, ".cedar") || name == "entities.json"
	}
	events := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := unix.Read(fd, buf)
			if err == unix.EINTR {
				continue
			}
			if err != nil || n <= 0 {
				logf("policy watch stopped: %v", err)
				return
			}
			hit := false
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				nameLen := int(ev.Len)
				name := ""
				if nameLen > 0 && off+unix.SizeofInotifyEvent+nameLen <= n {
					name = strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+nameLen]), "\x00")
				}
				if ev.Mask&unix.IN_Q_OVERFLOW != 0 || relevant(name) {
					hit = true
				}
				off += unix.SizeofInotifyEvent + nameLen
			}
			if hit {
				select {
				case events <- struct{}{}:
				default:
				}
			}
		}
	}()
	go func() {
		const settle = 300 * time.Millisecond
		for range events {
			timer := time.NewTimer(settle)
		quiet:
			for {
				select {
				case <-events:
					timer.Reset(settle)
				case <-timer.C:
					break quiet
				}
			}
			reload("policy directory changed")
		}
	}()
	return nil
}
