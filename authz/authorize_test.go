package authz

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go/types"
)

func TestStrings(t *testing.T) {
	r := FileResource("/etc/shadow", nil)
	if got := DenialMessage("alice", FileAction("read"), r); got != `Permission denied: alice unauthorized to perform file_system::Action::"read" for file_system::File::"/etc/shadow"` {
		t.Errorf("DenialMessage = %s", got)
	}
	tests := []struct{ got, want string }{
		{FileResource(`/tmp/a"b\c`, nil).String(), `file_system::File::"/tmp/a\"b\\c"`},
		{DirResource("/", nil).String(), `file_system::Dir::"/"`},
		{URLResource("https://example.com/x").String(), `network::url::"https://example.com/x"`},
		{ProcessResource(42, "", "", "").String(), `process_system::Process::"42"`},
		{ServiceResource("nginx.service").String(), `systemd::Service::"nginx.service"`},
		{HostnameResource("db.internal").String(), `sysinfo::Hostname::"db.internal"`},
		{EntityResource("sysctl::Sysctl", "sysctl").String(), `sysctl::Sysctl::"sysctl"`},
		{Action{NS: "process_system", Name: "kill"}.String(), `process_system::Action::"kill"`},
		{Resource{}.String(), "<invalid resource>"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %s, want %s", tt.got, tt.want)
		}
	}
	if r.Type() != "file_system::File" || r.ID() != "/etc/shadow" {
		t.Errorf("Type, ID = %q, %q", r.Type(), r.ID())
	}
}

func TestFileResourceChain(t *testing.T) {
	r := FileResource("/a/b/c", &FileAttrs{Owner: "root", Group: "wheel", UID: 0, GID: 10, Mode: 0o640, Kind: "file"})
	var chain []string
	for _, e := range r.ents() {
		parents := e.Parents.Slice()
		p := ""
		if len(parents) == 1 {
			p = parents[0].String()
		} else if len(parents) > 1 {
			t.Fatalf("%s has %d parents", e.UID, len(parents))
		}
		chain = append(chain, e.UID.String()+" in "+p)
	}
	want := []string{
		`file_system::File::"/a/b/c" in file_system::Dir::"/a/b"`,
		`file_system::Dir::"/a/b" in file_system::Dir::"/a"`,
		`file_system::Dir::"/a" in file_system::Dir::"/"`,
		`file_system::Dir::"/" in `,
	}
	if !slices.Equal(chain, want) {
		t.Errorf("chain:\n%s\nwant:\n%s", strings.Join(chain, "\n"), strings.Join(want, "\n"))
	}
	attrs := r.ents()[0].Attributes
	for k, want := range map[string]types.Value{"path": types.String("/a/b/c"), "owner": types.String("root"), "group": types.String("wheel"),
		"uid": types.Long(0), "gid": types.Long(10), "mode": types.Long(0o640), "kind": types.String("file")} {
		if got, ok := attrs.Get(types.String(k)); !ok || !got.Equal(want) {
			t.Errorf("attr %s = %v, want %v", k, got, want)
		}
	}
	if n := FileResource("/a", nil).ents()[0].Attributes.Len(); n != 1 {
		t.Errorf("nil attrs gave %d attributes, want only path", n)
	}
	for _, bad := range []string{"a", "/a/", "/a/../b", "", "/a//b"} {
		if FileResource(bad, nil).invalid == "" || DirResource(bad, nil).invalid == "" {
			t.Errorf("non-canonical %q accepted", bad)
		}
	}
}

func TestURLAttributes(t *testing.T) {
	get := func(r Resource, k string) string {
		v, ok := r.ents()[0].Attributes.Get(types.String(k))
		if !ok {
			return "<none>"
		}
		return string(v.MarshalCedar())
	}
	r := URLResource("https://Example.com/a%20b?q=1")
	if get(r, "scheme") != `"https"` || get(r, "host") != `"Example.com"` || get(r, "port") != "443" || get(r, "path") != `"/a%20b"` {
		t.Errorf("https attrs: %v", r.ents()[0].Attributes)
	}
	if r := URLResource("tcp://10.0.0.1:5432"); get(r, "port") != "5432" || get(r, "host") != `"10.0.0.1"` {
		t.Errorf("tcp attrs: %v", r.ents()[0].Attributes)
	}
	if r := URLResource("not a url"); get(r, "url") != `"not a url"` || get(r, "host") != "<none>" {
		t.Errorf("unparsable url attrs: %v", r.ents()[0].Attributes)
	}
}

// TestExecuteContext shows Rex's execute context, whose arguments and
// environment are entities read with getTag.
func TestExecuteContext(t *testing.T) {
	s, err := LoadFiles([]File{{Name: "x.cedar", Data: []byte(`
@id("ls")
permit(principal, action == file_system::Action::"execute", resource == file_system::File::"/usr/bin/ls")
  when { context.arguments.hasTag("--color") && context.arguments.getTag("--color") == "never" &&
         !context.environment.names.contains("LD_PRELOAD") && context.user.uid != 0 };`)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := func(color, env string, uid int) map[string]any {
		return map[string]any{
			"arguments": ContextEntity{Type: "file_system::Arguments", ID: "args",
				Attrs: map[string]any{"keys": []string{"--color"}, "flags": []string{"-l"}, "positional_values": []string{"/tmp"}},
				Tags:  map[string]string{"--color": color}},
			"environment": ContextEntity{Type: "file_system::Environment", ID: "env",
				Attrs: map[string]any{"names": []string{env}}, Tags: map[string]string{env: "x"}},
			"user":  map[string]any{"username": "nobody", "uid": uid},
			"group": map[string]any{"groupname": "nogroup", "gid": uint32(65534)},
		}
	}
	ls := FileResource("/usr/bin/ls", nil)
	p := Principal{Name: "alice", UID: 1000}
	if d := s.Authorize(p, FileAction("execute"), ls, ctx("never", "PATH", 65534)); !d.Allow || len(d.Errors) > 0 {
		t.Errorf("plain ls: %+v", d)
	}
	for name, c := range map[string]map[string]any{
		"color":   ctx("always", "PATH", 65534),
		"preload": ctx("never", "LD_PRELOAD", 65534),
		"root":    ctx("never", "PATH", 0),
	} {
		if d := s.Authorize(p, FileAction("execute"), ls, c); d.Allow {
			t.Errorf("%s: allowed", name)
		}
	}
	if d := s.Authorize(p, FileAction("execute"), ls, map[string]any{"bad": struct{}{}}); d.Allow || len(d.Errors) != 1 || !strings.HasPrefix(d.Errors[0], "request: context") {
		t.Errorf("unsupported context value: %+v", d)
	}
}

func TestFailClosed(t *testing.T) {
	var nilSet *PolicySet
	p := Principal{Name: "alice"}
	if d := nilSet.Authorize(p, FileAction("read"), FileResource("/x", nil), nil); d.Allow || len(d.Errors) == 0 {
		t.Errorf("nil set: %+v", d)
	}
	s, err := LoadFiles([]File{{Name: "all.cedar", Data: []byte("permit(principal, action, resource);")}})
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]Decision{
		"zero resource":  s.Authorize(p, FileAction("read"), Resource{}, nil),
		"bad path":       s.Authorize(p, FileAction("read"), FileResource("/x/../y", nil), nil),
		"no principal":   s.Authorize(Principal{}, FileAction("read"), FileResource("/x", nil), nil),
		"unknown action": s.Authorize(p, Action{NS: "file_system", Name: "SafeIOX"}, FileResource("/x", nil), nil),
	} {
		if d.Allow || len(d.Errors) != 1 || !strings.HasPrefix(d.Errors[0], "request: ") {
			t.Errorf("%s: %+v", name, d)
		}
	}
	if d := s.Authorize(p, FileAction("read"), FileResource("/x", nil), nil); !d.Allow {
		t.Errorf("permit-all denied: %+v", d)
	}
}

// TestIndexMatchesFullScan checks that evaluating only the policies indexed
// under the request's action gives the same decision as evaluating all of
// them, for every action of the schema.
func TestIndexMatchesFullScan(t *testing.T) {
	src := `
@id("eq") permit(principal, action == file_system::Action::"read", resource);
@id("group") permit(principal, action in file_system::Action::"SafeIO", resource) when { resource in file_system::Dir::"/srv" };
@id("set") forbid(principal, action in [file_system::Action::"delete", process_system::Action::"ProcessAction"], resource);
@id("all") permit(principal, action, resource) when { principal has uid && principal.uid == 0 };
@id("proc") permit(principal, action == process_system::Action::"list", resource);
@id("in-self") permit(principal, action in systemd::Action::"status", resource);
@id("cond-action") permit(principal, action, resource is file_system::File) when { action == file_system::Action::"write" };
@id("res-in") permit(principal, action == file_system::Action::"read", resource in file_system::Dir::"/srv");
@id("res-eq") forbid(principal, action == file_system::Action::"read", resource == file_system::File::"/srv/x");
@id("res-is-in") permit(principal, action == file_system::Action::"stat", resource is file_system::Dir in file_system::Dir::"/");
@id("res-other") permit(principal, action == file_system::Action::"read", resource in file_system::Dir::"/var");
@id("res-dir-eq") permit(principal, action == file_system::Action::"stat", resource == file_system::Dir::"/etc");
`
	s, err := LoadFiles([]File{{Name: "i.cedar", Data: []byte(src)}})
	if err != nil {
		t.Fatal(err)
	}
	full := *s
	full.byAction = maps.Clone(s.byAction)
	for uid := range full.byAction {
		full.byAction[uid] = actionIndex{all: policyList(s.policies), any: policyList(s.policies)}
	}
	resources := map[string][]Resource{
		"file_system":    {FileResource("/srv/x", nil), DirResource("/etc", nil), FileResource("/srv/y/z", nil), FileResource("/var/log/a", nil), DirResource("/", nil)},
		"process_system": {ProcessResource(7, "a", "root", "a")},
		"systemd":        {ServiceResource("a.service"), EntityResource("systemd::Systemd", "systemd")},
		"network":        {URLResource("https://a/")},
		"sysinfo":        {HostnameResource("a"), EntityResource("sysinfo::Uname", "uname")},
		"sysctl":         {EntityResource("sysctl::Sysctl", "sysctl")},
	}
	checked := 0
	for uid := range s.byAction {
		ns := strings.TrimSuffix(string(uid.Type), "::Action")
		a := Action{NS: ns, Name: string(uid.ID)}
		for _, r := range resources[ns] {
			for _, p := range []Principal{{Name: "root", UID: 0}, {Name: "alice", UID: 1000}} {
				got := s.Authorize(p, a, r, nil)
				want := full.Authorize(p, a, r, nil)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s %s %s: indexed %+v, full %+v", p.Name, a, r, got, want)
				}
				checked++
			}
		}
	}
	if checked < 50 {
		t.Errorf("only %d requests checked", checked)
	}
	// The index really narrows: a read is not evaluated against the
	// process-only policy.
	for _, p := range s.byAction[FileAction("read").uid()].all {
		if p.id == "proc" || p.id == "in-self" {
			t.Errorf("read candidates include %q", p.id)
		}
	}
}

func BenchmarkAuthorize(b *testing.B) {
	actions := []string{"read", "write", "open", "stat", "delete"}
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			var src strings.Builder
			for i := range n {
				fmt.Fprintf(&src, "@id(\"p%d\")\npermit(principal in Group::\"g%d\", action == file_system::Action::%q, resource in file_system::Dir::\"/srv/%d\") when { resource has owner && resource.owner == \"u%d\" };\n",
					i, i%7, actions[i%len(actions)], i, i)
			}
			s, err := LoadFiles([]File{{Name: "bench.cedar", Data: []byte(src.String())}})
			if err != nil {
				b.Fatal(err)
			}
			p := Principal{Name: "alice", UID: 1000, Groups: []string{"g1", "users"}}
			r := FileResource("/srv/1/data/file.txt", &FileAttrs{Owner: "u1", Mode: 0o644, Kind: "file"})
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if d := s.Authorize(p, FileAction("write"), r, nil); !d.Allow {
					b.Fatalf("denied: %+v", d)
				}
			}
		})
	}
}

// The resource index follows parents from entities.json: a policy on an
// entity that only entities.json puts above the resource still applies.
func TestIndexFollowsEntitiesJSONParents(t *testing.T) {
	pol := `@id("special") permit(principal, action == file_system::Action::"read", resource in file_system::Dir::"/special");`
	ents := `[{"uid": {"type": "file_system::Dir", "id": "/opt/app"}, "attrs": {"path": "/opt/app"}, "parents": [{"type": "file_system::Dir", "id": "/special"}]}]`
	s, err := LoadFiles([]File{{Name: "p.cedar", Data: []byte(pol)}, {Name: EntitiesFile, Data: []byte(ents)}})
	if err != nil {
		t.Fatal(err)
	}
	d := s.Authorize(Principal{Name: "alice", UID: 1000}, FileAction("read"), FileResource("/opt/app/x", nil), nil)
	if !d.Allow || fmt.Sprint(d.PolicyIDs) != "[special]" {
		t.Fatalf("entities.json parent ignored by the index: %+v", d)
	}
	d = s.Authorize(Principal{Name: "alice", UID: 1000}, FileAction("read"), FileResource("/opt/other/x", nil), nil)
	if d.Allow {
		t.Fatalf("allowed outside the special tree: %+v", d)
	}
}

// BenchmarkFileResource builds a File entity with attributes and its chain
// of parent Dirs, as the broker does for every file request.
func BenchmarkFileResource(b *testing.B) {
	attrs := &FileAttrs{Owner: "root", Group: "adm", UID: 0, GID: 4, Mode: 0o640, Kind: "file"}
	b.ReportAllocs()
	for b.Loop() {
		// The entities too: a request the Memo has not seen builds them.
		if r := FileResource("/var/log/nginx/access.log", attrs); r.invalid != "" || len(r.ents()) != 5 {
			b.Fatal(r.invalid)
		}
	}
}
