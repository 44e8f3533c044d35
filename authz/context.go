package authz

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/cedar-policy/cedar-go/types"
)

// maxContextDepth bounds the nesting of a request context; Rex's deepest
// context (execute) is two levels deep.
const maxContextDepth = 16

// ContextEntity is a context value that is an entity: the entity joins the
// request's entities and the context holds a reference to it. Rex's execute
// context passes its arguments and environment this way, so that policies
// read values with getTag.
type ContextEntity struct {
	Type, ID string
	Attrs    map[string]any
	Tags     map[string]string
}

// contextRecord converts a Go context to a Cedar record. It accepts strings,
// booleans, integers, json.Number integers, slices ([]string, []any), maps
// (map[string]any, map[string]string), ContextEntity and Cedar values; it
// returns the entities that ContextEntity values introduce.
func contextRecord(ctx map[string]any) (types.Record, []types.Entity, error) {
	var ents []types.Entity
	rec, err := toRecord(ctx, &ents, 0)
	if err != nil {
		return types.Record{}, nil, err
	}
	return rec, ents, nil
}

func toRecord(m map[string]any, ents *[]types.Entity, depth int) (types.Record, error) {
	if depth > maxContextDepth {
		return types.Record{}, fmt.Errorf("context nested deeper than %d levels", maxContextDepth)
	}
	rm := make(types.RecordMap, len(m))
	for k, v := range m {
		cv, err := toValue(v, ents, depth+1)
		if err != nil {
			return types.Record{}, fmt.Errorf("%s: %w", k, err)
		}
		rm[types.String(k)] = cv
	}
	return types.NewRecord(rm), nil
}

func toValue(v any, ents *[]types.Entity, depth int) (types.Value, error) {
	if depth > maxContextDepth {
		return nil, fmt.Errorf("context nested deeper than %d levels", maxContextDepth)
	}
	switch v := v.(type) {
	case types.Value:
		return v, nil
	case string:
		return types.String(v), nil
	case bool:
		return types.Boolean(v), nil
	case int:
		return types.Long(v), nil
	case int32:
		return types.Long(v), nil
	case int64:
		return types.Long(v), nil
	case uint32:
		return types.Long(v), nil
	case uint64:
		if v > math.MaxInt64 {
			return nil, fmt.Errorf("integer %d out of range", v)
		}
		return types.Long(v), nil
	case json.Number:
		n, err := v.Int64()
		if err != nil {
			return nil, fmt.Errorf("number %s is not a 64-bit integer", v)
		}
		return types.Long(n), nil
	case float64:
		if v != math.Trunc(v) || v < math.MinInt64 || v >= math.MaxInt64 {
			return nil, fmt.Errorf("number %v is not a 64-bit integer", v)
		}
		return types.Long(v), nil
	case []string:
		vals := make([]types.Value, len(v))
		for i, s := range v {
			vals[i] = types.String(s)
		}
		return types.NewSet(vals...), nil
	case []any:
		vals := make([]types.Value, len(v))
		for i, e := range v {
			cv, err := toValue(e, ents, depth+1)
			if err != nil {
				return nil, err
			}
			vals[i] = cv
		}
		return types.NewSet(vals...), nil
	case map[string]string:
		rm := make(types.RecordMap, len(v))
		for k, s := range v {
			rm[types.String(k)] = types.String(s)
		}
		return types.NewRecord(rm), nil
	case map[string]any:
		return toRecord(v, ents, depth)
	case ContextEntity:
		attrs, err := toRecord(v.Attrs, ents, depth)
		if err != nil {
			return nil, err
		}
		tags := make(types.RecordMap, len(v.Tags))
		for k, s := range v.Tags {
			tags[types.String(k)] = types.String(s)
		}
		uid := types.NewEntityUID(types.EntityType(v.Type), types.String(v.ID))
		*ents = append(*ents, types.Entity{UID: uid, Attributes: attrs, Tags: types.NewRecord(tags)})
		return uid, nil
	case nil:
		return nil, fmt.Errorf("null has no Cedar value")
	}
	return nil, fmt.Errorf("unsupported context value of type %T", v)
}
