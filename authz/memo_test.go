package authz

import (
	"fmt"
	"slices"
	"testing"
)

// TestMemoMatchesAuthorize: the Memo answers every request exactly as
// PolicySet.Authorize does, the first time and every time after, including
// requests that differ only in an fstat attribute, in the principal's
// groups, or in the context.
func TestMemoMatchesAuthorize(t *testing.T) {
	ps, err := LoadFiles([]File{{Name: "m.cedar", Data: []byte(`
@id("own") permit(principal, action == file_system::Action::"read", resource)
  when { resource has owner && principal has name && resource.owner == principal.name };
@id("ops") permit(principal in Group::"ops", action == file_system::Action::"stat", resource in file_system::Dir::"/srv");
@id("kind") permit(principal, action == file_system::Action::"open", resource)
  when { resource has kind && resource.kind == "dir" };
@id("nomode") forbid(principal, action == file_system::Action::"open", resource)
  when { resource has mode && resource.mode == 511 };
@id("exec") permit(principal, action == file_system::Action::"execute", resource)
  when { context.user.username == "nobody" };
`)}})
	if err != nil {
		t.Fatal(err)
	}
	alice := Principal{Name: "alice", UID: 1000, Groups: []string{"ops"}}
	bob := Principal{Name: "bob", UID: 1001}
	attrs := []*FileAttrs{
		nil,
		{Owner: "alice", Group: "alice", UID: 1000, GID: 1000, Mode: 0o644, Kind: "file"},
		{Owner: "bob", Group: "alice", UID: 1001, GID: 1000, Mode: 0o644, Kind: "file"},
		{Owner: "alice", Group: "alice", UID: 1000, GID: 1000, Mode: 0o777, Kind: "dir"},
		{Owner: "alice", Group: "alice", UID: 1000, GID: 1000, Mode: 0o755, Kind: "dir"},
	}
	var resources []Resource
	for _, p := range []string{"/srv/a", "/srv", "/etc/passwd", "/", "/srv/../x"} {
		for _, a := range attrs {
			resources = append(resources, FileResource(p, a), DirResource(p, a))
		}
	}
	resources = append(resources, URLResource("https://example.com/"), Resource{})
	actions := []Action{FileAction("read"), FileAction("stat"), FileAction("open"), FileAction("execute")}
	ctxs := []map[string]any{nil,
		{"user": map[string]any{"uid": int64(65534), "username": "nobody"}},
		{"user": map[string]any{"uid": int64(0), "username": "root"}}}
	for _, p := range []Principal{alice, bob} {
		m := NewMemo(ps, p)
		allowed := 0
		for round := range 3 {
			for _, a := range actions {
				for _, r := range resources {
					for _, ctx := range ctxs {
						want := ps.Authorize(p, a, r, ctx)
						got := m.Authorize(a, r, ctx)
						if got.Allow != want.Allow || !slices.Equal(got.PolicyIDs, want.PolicyIDs) || !slices.Equal(got.Errors, want.Errors) {
							t.Fatalf("round %d, %s %s %s ctx=%v: memo %+v, Authorize %+v", round, p.Name, a, r, ctx, got, want)
						}
						if got.Allow {
							allowed++
						}
					}
				}
			}
		}
		// The matrix must exercise both answers, or it proves nothing.
		if allowed == 0 {
			t.Errorf("%s: no request allowed in the matrix", p.Name)
		}
	}
}

// TestMemoBounded: past memoMax distinct requests the Memo starts over
// instead of growing.
func TestMemoBounded(t *testing.T) {
	ps, err := LoadFiles([]File{{Name: "m.cedar", Data: []byte(`permit(principal, action == file_system::Action::"stat", resource);`)}})
	if err != nil {
		t.Fatal(err)
	}
	m := NewMemo(ps, Principal{Name: "alice"})
	for i := range memoMax + 10 {
		if d := m.Authorize(FileAction("stat"), FileResource(fmt.Sprintf("/f%d", i), nil), nil); !d.Allow {
			t.Fatalf("stat /f%d denied: %+v", i, d)
		}
	}
	if n := len(m.m); n > memoMax || n == 0 {
		t.Errorf("memo holds %d entries, want 1..%d", n, memoMax)
	}
	if d := NewMemo(ps, Principal{}).Authorize(FileAction("stat"), FileResource("/f", nil), nil); d.Allow {
		t.Error("a principal without a name was allowed")
	}
}
