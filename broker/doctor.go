package broker

import (
	"fmt"
	"io"
)

// Doctor prints one line per layer, `NAME STATUS detail`, with what to do
// for each layer that is not ok, and returns the exit code: 0 only when no
// required layer is missing or degraded.
func Doctor(w io.Writer, results []LayerResult) int {
	code := 0
	for _, r := range results {
		line := fmt.Sprintf("%-17s %s", r.Name, r.Status)
		if r.Detail != "" {
			line = fmt.Sprintf("%-17s %-8s %s", r.Name, r.Status, r.Detail)
		}
		if r.Status != LayerOK {
			line += "; fix: " + r.Fix
			if r.Required {
				code = 1
			}
		}
		fmt.Fprintln(w, line)
	}
	if code != 0 {
		fmt.Fprintln(w, "rex-broker will refuse runs until the layers above are fixed, or named in --allow-degraded=LAYER[,LAYER]")
	}
	return code
}
