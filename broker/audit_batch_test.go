package broker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/ipc"
)

// writes records every Write as one entry.
type writes struct {
	mu  sync.Mutex
	all [][]byte
}

func (w *writes) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all = append(w.all, bytes.Clone(b))
	return len(b), nil
}

func (w *writes) snapshot() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]byte(nil), w.all...)
}

// lines checks that every write holds whole JSON lines, at most auditBatch
// bytes unless it is one line, and returns the decisions' resources in
// the order written.
func (w *writes) lines(t *testing.T) []string {
	t.Helper()
	var resources []string
	for _, b := range w.snapshot() {
		ls := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if !bytes.HasSuffix(b, []byte("\n")) || (len(b) > auditBatch && len(ls) > 1) {
			t.Errorf("a write of %d bytes, %d lines: %.80q…", len(b), len(ls), b)
		}
		for _, l := range ls {
			var rec AuditRecord
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				t.Fatalf("audit line %q: %v", l, err)
			}
			if rec.Event == "decision" {
				resources = append(resources, rec.Resource)
			}
		}
	}
	return resources
}

// A listing's decisions, one per entry, are written together before the
// reply reaches the worker, in as few writes as auditBatch allows and in
// the order they were made; a later request's gate is written before it
// acts.
func TestListingAuditLinesBeforeTheReply(t *testing.T) {
	dir := t.TempDir()
	const n = 60
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w := &writes{}
	ask := rawSession(t, loadPolicy(t, `permit(principal, action, resource in file_system::Dir::"`+dir+`");`), w, nil)
	r := ask(ipc.OpList, &ipc.ListReq{Path: dir})
	if r.Code != ipc.CodeOK {
		t.Fatalf("list: %v %s", r.Code, r.Message)
	}
	var list ipc.ListResp
	if err := ipc.Unmarshal(r.Body, &list); err != nil || len(list.Entries) != n {
		t.Fatalf("list: %d entries (%v)", len(list.Entries), err)
	}
	// The reply is here: every line of the request must be written.
	resources := w.lines(t)
	var entries []string
	for _, res := range resources {
		if strings.Contains(res, dir+"/f") {
			entries = append(entries, res)
		}
	}
	if len(entries) != n {
		t.Fatalf("%d entry decisions written before the reply, want %d", len(entries), n)
	}
	for i, e := range list.Entries {
		if want := fmt.Sprintf("file_system::File::%q", filepath.Join(dir, e.Name)); entries[i] != want {
			t.Fatalf("decision %d is for %s, listed entry %s", i, entries[i], want)
		}
	}
	if got := len(w.snapshot()); got >= n/2 {
		t.Errorf("%d writes for %d decisions: not batched", got, len(resources))
	}
	before := len(w.snapshot())
	if r := ask(ipc.OpStat, &ipc.PathReq{Path: dir + "/f00"}); r.Code != ipc.CodeOK {
		t.Fatalf("stat: %v", r.Code)
	}
	if got := len(w.snapshot()); got != before+1 {
		t.Errorf("a stat's decision took %d writes", got-before)
	}
}

// Quiet decisions wait in the session; a gate writes them and its own
// line, in order, before it returns to the handler.
func TestGateWritesWaitingAuditLines(t *testing.T) {
	w := &writes{}
	s := &session{run: testRun(sharedFS(t), loadPolicy(t, `permit(principal, action, resource);`), w, nil)}
	stat := authz.FileAction("stat")
	for _, p := range []string{"/a", "/b", "/c"} {
		s.authorizeQuiet(stat, authz.FileResource(p, nil))
	}
	if got := len(w.snapshot()); got != 0 {
		t.Fatalf("quiet decisions wrote %d times before any gate or reply", got)
	}
	if err := s.authorize(stat, authz.FileResource("/d", nil), nil); err != nil {
		t.Fatal(err)
	}
	got := w.lines(t)
	want := []string{`file_system::File::"/a"`, `file_system::File::"/b"`, `file_system::File::"/c"`, `file_system::File::"/d"`}
	if strings.Join(got, " ") != strings.Join(want, " ") || len(w.snapshot()) != 1 {
		t.Errorf("after the gate: %d writes of %v, want one of %v", len(w.snapshot()), got, want)
	}
	// Past auditBatch, the lines already waiting are written, whole.
	for i := range 100 {
		s.authorizeQuiet(stat, authz.FileResource(fmt.Sprintf("/long/%03d/%s", i, strings.Repeat("x", 100)), nil))
	}
	s.flushAudit()
	if got := w.lines(t); len(got) != 104 {
		t.Errorf("%d decisions written, want 104", len(got))
	}
	// A gate whose line would take the waiting ones past auditBatch writes
	// them first: no write of several lines is longer than a pipe's
	// atomic write (lines checks that).
	// (A fill line is ~230 bytes, under the 300 left, so the fill itself
	// never passes auditBatch; the gate's line is longer than 300.)
	for i := 0; len(s.audit) < auditBatch-300; i++ {
		if i == 100 {
			t.Fatalf("the fill does not grow: %d bytes waiting", len(s.audit))
		}
		s.authorizeQuiet(stat, authz.FileResource(fmt.Sprintf("/fill/%03d", i), nil))
	}
	waiting := strings.Count(string(s.audit), "\n")
	if err := s.authorize(stat, authz.FileResource("/gate"+strings.Repeat("/"+strings.Repeat("y", 100), 4), nil), nil); err != nil {
		t.Fatal(err)
	}
	if got := w.lines(t); len(got) != 104+waiting+1 || len(s.audit) != 0 {
		t.Errorf("%d decisions written, want %d, %d bytes still waiting", len(got), 104+waiting+1, len(s.audit))
	}
}
