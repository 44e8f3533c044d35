package authz

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// loadProblems loads one policy file and returns its problems, failing the
// test when loading succeeds.
func loadProblems(t *testing.T, name, src string) []Problem {
	t.Helper()
	_, err := LoadFiles([]File{{Name: name, Data: []byte(src)}})
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("LoadFiles(%q) error = %v, want *LoadError", src, err)
	}
	return le.Problems
}

func TestLoadErrorsHaveFileLineCol(t *testing.T) {
	tests := []struct {
		name, src string
		line, col int
		msg       string
	}{
		{
			name: "parse error",
			src:  "permit(principal, action, resource);\n\npermit(principal, action, resource) when { 1 + };\n",
			line: 3, col: 49, msg: "syntax error",
		},
		{
			name: "unterminated policy",
			src:  "permit(principal, action, resource)\n",
			line: 2, col: 1, msg: "syntax error",
		},
		{
			name: "unknown action",
			src:  "// comment\n  permit(principal, action == file_system::Action::\"teleport\", resource);\n",
			line: 2, col: 3, msg: "teleport",
		},
		{
			name: "unknown attribute",
			src:  "permit(principal, action, resource);\n\n@id(\"x\")\npermit(principal, action == file_system::Action::\"read\", resource)\n  when { resource.colour == \"red\" };\n",
			line: 3, col: 1, msg: "colour",
		},
		{
			name: "optional attribute without has",
			src:  "permit(principal, action == file_system::Action::\"read\", resource) when { resource.owner == \"root\" };",
			line: 1, col: 1, msg: "owner",
		},
		{
			name: "wrong context for the action",
			src:  "permit(principal, action == file_system::Action::\"read\", resource) when { context.destination.path == \"/\" };",
			line: 1, col: 1, msg: "destination",
		},
		{
			name: "unknown entity type",
			src:  "permit(principal == Admin::\"x\", action, resource);",
			line: 1, col: 1, msg: "Admin",
		},
		{
			name: "duplicate id",
			src:  "@id(\"a\")\npermit(principal, action, resource);\n@id(\"a\")\nforbid(principal, action, resource);\n",
			line: 3, col: 1, msg: `duplicate policy id "a" (first at p.cedar:1:1)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probs := loadProblems(t, "p.cedar", tt.src)
			found := false
			for _, p := range probs {
				if p.File != "p.cedar" || p.Line != tt.line || p.Col != tt.col {
					t.Errorf("problem %s, want it at p.cedar:%d:%d", p, tt.line, tt.col)
				}
				found = found || strings.Contains(p.String(), fmt.Sprintf("p.cedar:%d:%d: ", tt.line, tt.col)) && strings.Contains(p.Msg, tt.msg)
			}
			if !found {
				t.Errorf("no problem mentions %q: %v", tt.msg, probs)
			}
		})
	}
}

func TestPolicyIDs(t *testing.T) {
	s, err := LoadFiles([]File{
		{Name: "a.cedar", Data: []byte("@id(\"named\")\npermit(principal, action, resource);\n\n  permit(principal, action, resource);\n")},
		{Name: "dir/b.cedar", Data: []byte("\n\n@other(\"x\")\nforbid(principal, action, resource);")},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"named", "a.cedar:4", "dir/b.cedar:3"}
	if got := s.IDs(); !slices.Equal(got, want) || s.Len() != 3 {
		t.Errorf("IDs() = %q (Len %d), want %q", got, s.Len(), want)
	}
}

func TestDuplicateIDAcrossFiles(t *testing.T) {
	_, err := LoadFiles([]File{
		{Name: "a.cedar", Data: []byte("permit(principal, action, resource);")},
		{Name: "b.cedar", Data: []byte("@id(\"a.cedar:1\")\npermit(principal, action, resource);")},
	})
	if err == nil || !strings.Contains(err.Error(), "b.cedar:1:1: duplicate policy id") {
		t.Errorf("error = %v", err)
	}
}

// TestRexPoliciesValidate loads policies written the way Rex's own examples
// are, to show that they validate unchanged against rex's schema.
func TestRexPoliciesValidate(t *testing.T) {
	src := `
permit (
    principal == User::"operator",
    action in [
        file_system::Action::"write", file_system::Action::"open", file_system::Action::"create",
        file_system::Action::"delete", file_system::Action::"read", file_system::Action::"chmod",
        file_system::Action::"chown", file_system::Action::"stat", file_system::Action::"move",
        file_system::Action::"execute", file_system::Action::"network_namespace",
        file_system::Action::"unmount", file_system::Action::"redacted_read", file_system::Action::"set_x_attr"],
    resource
);
permit (
    principal == User::"operator",
    action in [process_system::Action::"list", process_system::Action::"list_fds",
               process_system::Action::"mount_namespace", process_system::Action::"network_namespace",
               process_system::Action::"kill", process_system::Action::"interrupt", process_system::Action::"trace"],
    resource
) when { resource.username == "operator" && resource.name like "*worker*" && resource.command like "*--serve*" };
permit (principal, action in file_system::Action::"SafeIO", resource)
    when { resource in file_system::Dir::"/tmp/rex_example" && resource.path like "/tmp/rex_example/*" };
permit (principal, action == file_system::Action::"move", resource)
    when { context.destination.parent_path == "/tmp" && context.destination.name like "*.log" };
permit (principal, action == file_system::Action::"set_x_attr", resource) when { context.xattr.name == "user.tag" };
permit (principal, action == file_system::Action::"execute", resource == file_system::File::"/usr/bin/ls")
    when { context.arguments.flags.contains("-l") && context.user.username == "nobody" &&
           context.group.gid == 65534 && context.environment.names.isEmpty() &&
           (context.arguments.hasTag("--color") && context.arguments.getTag("--color") == "never") };
permit (principal, action in network::Action::"NetworkAction", resource) when { resource.url like "https://*" };
permit (principal, action in sysinfo::Action::"SysinfoAction", resource);
permit (principal, action == sysinfo::Action::"resolve_hostname", resource) when { resource.hostname like "*.internal" };
permit (principal, action in systemd::Action::"SystemdAction", resource);
permit (principal, action == systemd::Action::"restart", resource) when { resource.name == "nginx.service" };
permit (principal, action == sysctl::Action::"load", resource);
`
	s, err := LoadFiles([]File{{Name: "rex.cedar", Data: []byte(src)}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 12 {
		t.Errorf("Len() = %d, want 12", s.Len())
	}
}

func TestLoadPathDirWithEntities(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("20-b.cedar", "@id(\"b\")\npermit(principal in Group::\"admins\", action == file_system::Action::\"delete\", resource);")
	write("10-a.cedar", "@id(\"a\")\npermit(principal, action == file_system::Action::\"read\", resource);")
	write("notes.txt", "this is not a policy (")
	write(EntitiesFile, `[{"uid": {"type": "User", "id": "dana"}, "parents": [{"type": "Group", "id": "admins"}], "attrs": {"uid": 1005}}]`)
	if err := os.Mkdir(filepath.Join(dir, "sub.cedar"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := LoadPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.IDs(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("IDs() = %q, want sorted by file name", got)
	}
	d := s.Authorize(Principal{Name: "dana", UID: 1005}, FileAction("delete"), FileResource("/tmp/x", nil), nil)
	if !d.Allow || !slices.Equal(d.PolicyIDs, []string{"b"}) {
		t.Errorf("group from entities.json: %+v", d)
	}
	d = s.Authorize(Principal{Name: "erin", UID: 1006}, FileAction("delete"), FileResource("/tmp/x", nil), nil)
	if d.Allow {
		t.Errorf("erin is not an admin: %+v", d)
	}

	// A single file works too, and a missing path is a problem that names it.
	if s, err := LoadPath(filepath.Join(dir, "10-a.cedar")); err != nil || s.Len() != 1 {
		t.Errorf("LoadPath(file) = %v, %v", s, err)
	}
	missing := filepath.Join(dir, "nope")
	if _, err := LoadPath(missing); err == nil || !strings.HasPrefix(err.Error(), missing+": ") {
		t.Errorf("LoadPath(missing) error = %v", err)
	}
}

func TestEntitiesProblems(t *testing.T) {
	tests := []struct{ name, data, msg string }{
		{"syntax", `[{"uid":`, "entities:"},
		{"action", `[{"uid": {"type": "file_system::Action", "id": "read"}, "parents": [], "attrs": {}}]`, "actions come from the schema"},
		{"unknown type", `[{"uid": {"type": "Robot", "id": "r2"}, "parents": [], "attrs": {}}]`, `entity Robot::"r2"`},
		{"bad attribute", `[{"uid": {"type": "User", "id": "x"}, "parents": [], "attrs": {"uid": "zero"}}]`, `entity User::"x"`},
	}
	for _, tt := range tests {
		_, err := LoadFiles([]File{{Name: "etc/" + EntitiesFile, Data: []byte(tt.data)}})
		if err == nil || !strings.Contains(err.Error(), "etc/entities.json: ") || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: error = %v, want one containing %q", tt.name, err, tt.msg)
		}
	}
}

func TestSchemaText(t *testing.T) {
	text := SchemaText()
	for _, want := range []string{"namespace file_system", "action SafeIO", "redacted_read", "entity User in [Group]", "namespace sysctl"} {
		if !strings.Contains(text, want) {
			t.Errorf("schema lacks %q", want)
		}
	}
	if _, err := loadSchema(); err != nil {
		t.Fatal(err)
	}
}

// FuzzLoad feeds arbitrary policy text to the loader: it must never panic,
// and whatever it accepts must be usable for a decision. Its seed corpus is
// testdata/fuzz/FuzzLoad, run by every go test.
func FuzzLoad(f *testing.F) {
	f.Fuzz(func(t *testing.T, src string) {
		s, err := LoadFiles([]File{{Name: "f.cedar", Data: []byte(src)}})
		if err != nil {
			var le *LoadError
			if !errors.As(err, &le) || len(le.Problems) == 0 {
				t.Fatalf("error %v is not a *LoadError with problems", err)
			}
			for _, p := range le.Problems {
				if p.File != "f.cedar" || p.Line < 1 || p.Col < 1 {
					t.Fatalf("problem without a position: %s", p)
				}
			}
			return
		}
		ids := s.IDs()
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("duplicate id %q accepted", id)
			}
			seen[id] = true
		}
		d := s.Authorize(Principal{Name: "alice", UID: 1000, Groups: []string{"ops"}}, FileAction("read"),
			FileResource("/srv/data/x", &FileAttrs{Owner: "alice", Mode: 0o644, Kind: "file"}), nil)
		for _, id := range d.PolicyIDs {
			if !seen[id] {
				t.Fatalf("decision names unknown policy %q", id)
			}
		}
	})
}
