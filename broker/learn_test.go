package broker

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rex-sh/rex/authz"
)

func loadPolicy(t *testing.T, src string) *authz.PolicySet {
	t.Helper()
	set, err := authz.LoadFiles([]authz.File{{Name: "p.cedar", Data: []byte(src)}})
	if err != nil {
		t.Fatalf("policy does not load: %v\n%s", err, src)
	}
	return set
}

// A learning run allows what the policy denies, records allowed and denied
// requests alike, once each, and still refuses requests Cedar cannot
// evaluate.
func TestLearnDecide(t *testing.T) {
	alice := authz.Principal{Name: "alice", UID: 1000}
	r := &run{principal: alice, learn: NewLearner(),
		policies: loadPolicy(t, `@id("stat-all") permit(principal, action == file_system::Action::"stat", resource);`)}
	read := authz.FileAction("read")
	hosts := authz.FileResource("/etc/hosts", nil)

	if d := r.decide(read, hosts, nil); !d.Allow || !slices.Equal(d.PolicyIDs, []string{LearnPolicyID}) {
		t.Errorf("denied request while learning: %+v", d)
	}
	if d := r.decide(authz.FileAction("stat"), hosts, nil); !d.Allow || !slices.Equal(d.PolicyIDs, []string{"stat-all"}) {
		t.Errorf("allowed request: %+v", d)
	}
	r.decide(read, hosts, nil)
	if d := r.decide(read, authz.FileResource("/etc//hosts", nil), nil); d.Allow {
		t.Errorf("non-canonical path allowed while learning: %+v", d)
	}
	if d := r.decide(authz.FileAction("teleport"), hosts, nil); d.Allow {
		t.Errorf("unknown action allowed while learning: %+v", d)
	}
	got := r.learn.Requests()
	want := []Learned{
		{Principal: "alice", Action: read, ResourceType: "file_system::File", ResourceID: "/etc/hosts"},
		{Principal: "alice", Action: authz.FileAction("stat"), ResourceType: "file_system::File", ResourceID: "/etc/hosts"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("recorded %+v\nwant %+v", got, want)
	}

	// Without a learner the same run denies.
	r.learn = nil
	if d := r.decide(read, hosts, nil); d.Allow {
		t.Errorf("denied request allowed without a learner: %+v", d)
	}
}

// The printed policy validates, permits exactly the recorded requests and
// nothing next to them.
func TestLearnedPolicy(t *testing.T) {
	odd := "/tmp/we\"ird\\na\tme\x01é"
	reqs := []Learned{
		{Principal: "alice", Action: authz.FileAction("open"), ResourceType: "file_system::Dir", ResourceID: "/srv"},
		{Principal: "alice", Action: authz.FileAction("read"), ResourceType: "file_system::File", ResourceID: "/srv/a.txt"},
		{Principal: "alice", Action: authz.FileAction("write"), ResourceType: "file_system::File", ResourceID: odd},
		{Principal: "alice", Action: authz.Action{NS: "sysinfo", Name: "list"}, ResourceType: "sysinfo::Uname", ResourceID: "uname"},
	}
	src := LearnedPolicy("job\n.risor", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), reqs)
	if !strings.HasPrefix(src, "// Learned by rex-exec --learn from job?.risor on 2026-01-02T03:04:05Z.\n") {
		t.Errorf("header:\n%s", src)
	}
	set := loadPolicy(t, src)
	if set.Len() != len(reqs) {
		t.Errorf("%d policies, want %d", set.Len(), len(reqs))
	}
	alice := authz.Principal{Name: "alice"}
	allow := func(p authz.Principal, a authz.Action, r authz.Resource) authz.Decision {
		return set.Authorize(p, a, r, nil)
	}
	checks := []struct {
		name string
		d    authz.Decision
		want bool
		id   string
	}{
		{"open dir", allow(alice, authz.FileAction("open"), authz.DirResource("/srv", nil)), true, "learned-001-open"},
		{"read file", allow(alice, authz.FileAction("read"), authz.FileResource("/srv/a.txt", nil)), true, "learned-002-read"},
		{"odd name", allow(alice, authz.FileAction("write"), authz.FileResource(odd, nil)), true, "learned-003-write"},
		{"uname", allow(alice, authz.Action{NS: "sysinfo", Name: "list"}, authz.EntityResource("sysinfo::Uname", "uname")), true, "learned-004-list"},
		{"other file in the dir", allow(alice, authz.FileAction("read"), authz.FileResource("/srv/b.txt", nil)), false, ""},
		{"other action", allow(alice, authz.FileAction("write"), authz.FileResource("/srv/a.txt", nil)), false, ""},
		{"dir as file", allow(alice, authz.FileAction("open"), authz.FileResource("/srv", nil)), false, ""},
		{"other user", allow(authz.Principal{Name: "bob"}, authz.FileAction("read"), authz.FileResource("/srv/a.txt", nil)), false, ""},
	}
	for _, c := range checks {
		if c.d.Allow != c.want || (c.want && !slices.Equal(c.d.PolicyIDs, []string{c.id})) {
			t.Errorf("%s: %+v, want allow=%v by %q", c.name, c.d, c.want, c.id)
		}
	}
	if got := LearnedPolicy("x", time.Now(), nil); loadPolicy(t, got).Len() != 0 {
		t.Errorf("empty learning is not an empty policy:\n%s", got)
	}
}
