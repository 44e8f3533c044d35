package authz

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A scenario file (testdata/scenarios/*.json) pins what a policy set means:
//
//	{
//	  "description": "what is being pinned",
//	  "policies": ["cedar text, one line per element"],
//	  "entities": [ Cedar JSON entities, loaded as entities.json ],
//	  "requests": [{
//	    "name": "what this request shows",
//	    "principal": {"name": "alice", "uid": 1000, "groups": ["ops"]},
//	    "action": "file_system::read",
//	    "resource": {"type": "file|dir|url|process|service|hostname|entity",
//	                 "path": "/x (file, dir)", "id": "(url, service, hostname, entity)",
//	                 "entity_type": "(entity)", "pid": 1, "name": "", "username": "", "command": "",
//	                 "attrs": {"owner": "", "group": "", "uid": 0, "gid": 0, "mode": 420, "kind": "file"},
//	                 "as_requested": true (canonicalise the path first, as the broker does)},
//	    "context": { ... },
//	    "decision": "allow|deny|invalid (as_requested paths Canonical refuses)",
//	    "policy_ids": ["determining policies, in load order"],
//	    "errors": ["ids of policies whose condition errored"]
//	  }]
//	}
type scenario struct {
	Description string            `json:"description"`
	Policies    []string          `json:"policies"`
	Entities    json.RawMessage   `json:"entities"`
	Requests    []scenarioRequest `json:"requests"`
}

type scenarioRequest struct {
	Name      string         `json:"name"`
	Principal Principal      `json:"principal"`
	Action    string         `json:"action"`
	Resource  resourceSpec   `json:"resource"`
	Context   map[string]any `json:"context"`
	Decision  string         `json:"decision"`
	PolicyIDs []string       `json:"policy_ids"`
	Errors    []string       `json:"errors"`
}

type resourceSpec struct {
	Type       string     `json:"type"`
	Path       string     `json:"path"`
	ID         string     `json:"id"`
	EntityType string     `json:"entity_type"`
	PID        int        `json:"pid"`
	Name       string     `json:"name"`
	Username   string     `json:"username"`
	Command    string     `json:"command"`
	Attrs      *FileAttrs `json:"attrs"`
	// AsRequested, for file and dir: the path is what a script sent, so it
	// goes through Canonical first, as the broker does; a path Canonical
	// refuses must be expected as the decision "invalid".
	AsRequested bool `json:"as_requested"`
}

func (r resourceSpec) build(t *testing.T) Resource {
	t.Helper()
	switch r.Type {
	case "file":
		return FileResource(r.Path, r.Attrs)
	case "dir":
		return DirResource(r.Path, r.Attrs)
	case "url":
		return URLResource(r.ID)
	case "process":
		return ProcessResource(r.PID, r.Name, r.Username, r.Command)
	case "service":
		return ServiceResource(r.ID)
	case "hostname":
		return HostnameResource(r.ID)
	case "entity":
		return EntityResource(r.EntityType, r.ID)
	}
	t.Fatalf("unknown resource type %q", r.Type)
	return Resource{}
}

func parseAction(t *testing.T, s string) Action {
	t.Helper()
	i := strings.LastIndex(s, "::")
	if i < 0 {
		t.Fatalf("action %q is not ns::name", s)
	}
	return Action{NS: s[:i], Name: s[i+2:]}
}

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			dec.UseNumber()
			var sc scenario
			if err := dec.Decode(&sc); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if len(sc.Requests) == 0 {
				t.Fatal("scenario has no requests")
			}
			in := []File{{Name: "policy.cedar", Data: []byte(strings.Join(sc.Policies, "\n"))}}
			if len(sc.Entities) > 0 {
				in = append(in, File{Name: EntitiesFile, Data: sc.Entities})
			}
			set, err := LoadFiles(in)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			for _, rq := range sc.Requests {
				t.Run(rq.Name, func(t *testing.T) {
					if rq.Resource.AsRequested {
						c, err := Canonical(rq.Resource.Path)
						if rq.Decision == "invalid" {
							if err == nil {
								t.Fatalf("Canonical(%q) = %q, want it refused", rq.Resource.Path, c)
							}
							return
						}
						if err != nil {
							t.Fatalf("Canonical(%q): %v", rq.Resource.Path, err)
						}
						rq.Resource.Path = c
					}
					if rq.Decision != "allow" && rq.Decision != "deny" {
						t.Fatalf("decision must be allow, deny or invalid, not %q", rq.Decision)
					}
					d := set.Authorize(rq.Principal, parseAction(t, rq.Action), rq.Resource.build(t), rq.Context)
					if d.Allow != (rq.Decision == "allow") {
						t.Errorf("allow = %v, want %s (%+v)", d.Allow, rq.Decision, d)
					}
					if !slices.Equal(d.PolicyIDs, rq.PolicyIDs) {
						t.Errorf("policy ids = %q, want %q", d.PolicyIDs, rq.PolicyIDs)
					}
					var errIDs []string
					for _, e := range d.Errors {
						id, _, _ := strings.Cut(e, ": ")
						errIDs = append(errIDs, id)
					}
					if !slices.Equal(errIDs, rq.Errors) {
						t.Errorf("errors = %q, want ids %q", d.Errors, rq.Errors)
					}
				})
			}
		})
	}
}
