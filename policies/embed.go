package policies

import _ "embed"

// Schema is the Cedar schema (human-readable format) that every policy is
// validated against and that rex-policy schema prints.
//
//go:embed rex.cedarschema
var Schema string
