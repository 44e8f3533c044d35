package authz

import (
	"sync"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"

	"github.com/rex-sh/rex/policies"
)

// SchemaText returns the Cedar schema (human-readable format) that policies
// are validated against.
func SchemaText() string { return policies.Schema }

// compiledSchema is the embedded schema, resolved once.
type compiledSchema struct {
	resolved  *resolved.Schema
	validator *validate.Validator
	// actions holds every action of the schema as an entity with its group
	// parents: Cedar needs them in the entity store to answer `action in`.
	actions types.EntityMap
	// members maps every action (groups included) to the concrete actions
	// that are it or descend from it, for indexing policies by action.
	members map[types.EntityUID][]types.EntityUID
}

// Preload compiles the embedded schema that loading policies validates
// against, once per process: a program that is about to load policies can
// start it early, beside other work. A fresh process took ~0.9 ms here to
// compile it, most of a standalone run's policy load; LoadPath waits for a
// compilation under way rather than starting another.
func Preload() { _, _ = loadSchema() }

var loadSchema = sync.OnceValues(func() (*compiledSchema, error) {
	// The text resolved ahead of time (schema_resolved.go, checked against
	// policies/rex.cedarschema by TestResolvedSchemaIsTheText): parsing and
	// resolving it took a fresh process ~0.45 ms here.
	r := resolvedSchema()
	cs := &compiledSchema{
		resolved:  r,
		validator: validate.New(r, validate.WithStrict()),
		actions:   make(types.EntityMap, len(r.Actions)),
		members:   make(map[types.EntityUID][]types.EntityUID, len(r.Actions)),
	}
	for uid, a := range r.Actions {
		cs.actions[uid] = a.Entity
	}
	for uid := range r.Actions {
		for anc := range cs.ancestorsOrSelf(uid) {
			cs.members[anc] = append(cs.members[anc], uid)
		}
	}
	return cs, nil
})

// ancestorsOrSelf returns uid and every action group it is in, transitively.
func (cs *compiledSchema) ancestorsOrSelf(uid types.EntityUID) map[types.EntityUID]struct{} {
	seen := map[types.EntityUID]struct{}{}
	stack := []types.EntityUID{uid}
	for len(stack) > 0 {
		u := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, ok := seen[u]; ok {
			continue
		}
		seen[u] = struct{}{}
		for p := range cs.actions[u].Parents.All() {
			stack = append(stack, p)
		}
	}
	return seen
}
