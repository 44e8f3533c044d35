package authz_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rex-sh/rex/authz/policytest"
)

// TestScenarios runs every scenario in testdata/scenarios (the policy test
// format of package policytest, shared with `rex-policy test`): each pins
// what a policy set decides for a request, with the determining policies.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/scenarios/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
			results, err := policytest.Run(file)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range results {
				for _, p := range r.Problems {
					t.Errorf("%s: %s", r.Name, p)
				}
			}
		})
	}
}
