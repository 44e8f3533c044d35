// Package policytest runs policy test files: requests with the decision
// and determining policies they must get. rex-policy test and rex's own
// authz scenario tests share it, so there is one format and one runner.
//
// Trust: operator tooling; its inputs are the operator's test and policy
// files.
package policytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rex-sh/rex/authz"
)

// A test file is the scenario format of authz/testdata/scenarios, so that
// rex's own tests and a security team's CI share one format:
//
//	{
//	  "description": "what is being pinned",
//	  "policies": ["inline cedar text, one line per element"],
//	  "policy_files": ["policy files or dirs, relative to the test file"],
//	                  (a policy without @id is named "<path as written>:<line>")
//	  "entities": [ Cedar JSON entities, as in entities.json ],
//	  "requests": [{
//	    "name": "...",
//	    "principal": {"name": "alice", "uid": 1000, "groups": ["ops"]},
//	    "action": "file_system::read",
//	    "resource": {"type": "file|dir|url|process|service|hostname|entity", "path": "/x", ...},
//	    "context": {...},
//	    "decision": "allow|deny|invalid",
//	    "policy_ids": ["determining policies, in load order"],
//	    "errors": ["ids of policies whose condition errored"]
//	  }]
//	}
//
// policy_ids and errors are compared exactly: leaving them out expects none.
type testFile struct {
	Description string          `json:"description"`
	Policies    []string        `json:"policies"`
	PolicyFiles []string        `json:"policy_files"`
	Entities    json.RawMessage `json:"entities"`
	Requests    []testRequest   `json:"requests"`
}

type testRequest struct {
	Name      string          `json:"name"`
	Principal authz.Principal `json:"principal"`
	Action    string          `json:"action"`
	Resource  resourceSpec    `json:"resource"`
	Context   map[string]any  `json:"context"`
	Decision  string          `json:"decision"`
	PolicyIDs []string        `json:"policy_ids"`
	Errors    []string        `json:"errors"`
}

type resourceSpec struct {
	Type       string           `json:"type"`
	Path       string           `json:"path"`
	ID         string           `json:"id"`
	EntityType string           `json:"entity_type"`
	PID        int              `json:"pid"`
	Name       string           `json:"name"`
	Username   string           `json:"username"`
	Command    string           `json:"command"`
	Attrs      *authz.FileAttrs `json:"attrs"`
	// AsRequested: the path is what a script sent, so it is canonicalised
	// first, as the broker does; a refused path must expect "invalid".
	AsRequested bool `json:"as_requested"`
}

func (r resourceSpec) build() (authz.Resource, error) {
	switch r.Type {
	case "file":
		return authz.FileResource(r.Path, r.Attrs), nil
	case "dir":
		return authz.DirResource(r.Path, r.Attrs), nil
	case "url":
		return authz.URLResource(r.ID), nil
	case "process":
		return authz.ProcessResource(r.PID, r.Name, r.Username, r.Command), nil
	case "service":
		return authz.ServiceResource(r.ID), nil
	case "hostname":
		return authz.HostnameResource(r.ID), nil
	case "entity":
		return authz.EntityResource(r.EntityType, r.ID), nil
	}
	return authz.Resource{}, fmt.Errorf("unknown resource type %q (want file, dir, url, process, service, hostname or entity)", r.Type)
}

func parseAction(s string) (authz.Action, error) {
	i := strings.LastIndex(s, "::")
	if i <= 0 || i+2 == len(s) {
		return authz.Action{}, fmt.Errorf("action %q is not namespace::name (such as file_system::read)", s)
	}
	return authz.Action{NS: s[:i], Name: s[i+2:]}, nil
}

// ErrInvalid marks a test file that cannot be run (as opposed to one whose
// expectations fail).
var ErrInvalid = errors.New("invalid test file")

// Result is the outcome of one request of a test file: Problems lists how
// the answer differs from the expectation (none: it passed).
type Result struct {
	Name     string
	Problems []string
}

// Run evaluates every request of the test file at name.
func Run(name string) ([]Result, error) {
	raw, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var tf testFile
	if err := dec.Decode(&tf); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(tf.Requests) == 0 {
		return nil, fmt.Errorf("%w: no requests", ErrInvalid)
	}
	set, err := loadTestPolicies(name, &tf)
	if err != nil {
		return nil, err
	}
	var out []Result
	for i, rq := range tf.Requests {
		label := rq.Name
		if label == "" {
			label = fmt.Sprintf("request %d", i+1)
		}
		problems, err := check(set, rq)
		if err != nil {
			return out, fmt.Errorf("%w: %s: %v", ErrInvalid, label, err)
		}
		out = append(out, Result{Name: label, Problems: problems})
	}
	return out, nil
}

func loadTestPolicies(name string, tf *testFile) (*authz.PolicySet, error) {
	var in []authz.File
	if len(tf.Policies) > 0 {
		// Named as in authz scenarios, so ids of policies without @id read
		// "policy.cedar:LINE" in both.
		in = append(in, authz.File{Name: "policy.cedar", Data: []byte(strings.Join(tf.Policies, "\n"))})
	}
	for _, p := range tf.PolicyFiles {
		at := p
		if !filepath.IsAbs(p) {
			at = filepath.Join(filepath.Dir(name), p)
		}
		files, err := policyFiles(at, p)
		if err != nil {
			return nil, fmt.Errorf("%w: policy_files: %v", ErrInvalid, err)
		}
		in = append(in, files...)
	}
	if len(in) == 0 {
		return nil, fmt.Errorf("%w: neither policies nor policy_files", ErrInvalid)
	}
	if len(tf.Entities) > 0 {
		in = append(in, authz.File{Name: authz.EntitiesFile, Data: tf.Entities})
	}
	set, err := authz.LoadFiles(in)
	if err != nil {
		return nil, fmt.Errorf("%w: policies do not load:\n%v", ErrInvalid, err)
	}
	return set, nil
}

// policyFiles reads the policy file at p, or every *.cedar file and
// entities.json of the directory at p, as the broker's --policy-dir does.
// Files are named after the path as written in the test file, so that the
// fallback ids of policies without @id ("file:line") do not depend on the
// directory rex-policy runs in.
func policyFiles(p, written string) ([]authz.File, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		b, err := os.ReadFile(p)
		return []authz.File{{Name: filepath.Clean(written), Data: b}}, err
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	var out []authz.File
	for _, e := range entries {
		if e.IsDir() || !(strings.HasSuffix(e.Name(), ".cedar") || e.Name() == authz.EntitiesFile) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(p, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, authz.File{Name: filepath.Join(written, e.Name()), Data: b})
	}
	return out, nil
}

// check evaluates one request and lists how the answer differs from the
// expectation; an error means the request itself is malformed.
func check(set *authz.PolicySet, rq testRequest) ([]string, error) {
	if rq.Resource.AsRequested {
		c, err := authz.Canonical(rq.Resource.Path)
		if rq.Decision == "invalid" {
			if err == nil {
				return []string{fmt.Sprintf("path %q canonicalises to %q, want it refused", rq.Resource.Path, c)}, nil
			}
			return nil, nil
		}
		if err != nil {
			return []string{fmt.Sprintf("path %q is refused (%v), want %s", rq.Resource.Path, err, rq.Decision)}, nil
		}
		rq.Resource.Path = c
	}
	if rq.Decision != "allow" && rq.Decision != "deny" {
		return nil, fmt.Errorf("decision must be allow, deny or invalid, not %q", rq.Decision)
	}
	act, err := parseAction(rq.Action)
	if err != nil {
		return nil, err
	}
	res, err := rq.Resource.build()
	if err != nil {
		return nil, err
	}
	d := set.Authorize(rq.Principal, act, res, rq.Context)
	var problems []string
	got := map[bool]string{true: "allow", false: "deny"}[d.Allow]
	if got != rq.Decision {
		problems = append(problems, fmt.Sprintf("decision: got %s, want %s", got, rq.Decision))
	}
	if !slices.Equal(d.PolicyIDs, rq.PolicyIDs) {
		problems = append(problems, fmt.Sprintf("policy ids: got %q, want %q", nonNil(d.PolicyIDs), nonNil(rq.PolicyIDs)))
	}
	var errIDs []string
	for _, e := range d.Errors {
		id, _, _ := strings.Cut(e, ": ")
		errIDs = append(errIDs, id)
	}
	if !slices.Equal(errIDs, rq.Errors) {
		problems = append(problems, fmt.Sprintf("errors: got %q, want ids %q", nonNil(d.Errors), nonNil(rq.Errors)))
	}
	return problems, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
