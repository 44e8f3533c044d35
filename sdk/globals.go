package sdk

import (
	"context"

	"github.com/risor-io/risor/builtins"
	modBase64 "github.com/risor-io/risor/modules/base64"
	modBytes "github.com/risor-io/risor/modules/bytes"
	modErrors "github.com/risor-io/risor/modules/errors"
	modFilepath "github.com/risor-io/risor/modules/filepath"
	modFmt "github.com/risor-io/risor/modules/fmt"
	modJSON "github.com/risor-io/risor/modules/json"
	modMath "github.com/risor-io/risor/modules/math"
	modOs "github.com/risor-io/risor/modules/os"
	modRand "github.com/risor-io/risor/modules/rand"
	modRegexp "github.com/risor-io/risor/modules/regexp"
	modStrconv "github.com/risor-io/risor/modules/strconv"
	modStrings "github.com/risor-io/risor/modules/strings"
	modTime "github.com/risor-io/risor/modules/time"
	"github.com/risor-io/risor/object"
)

// pureBuiltins are the Risor builtins (risor/builtins, v1.8.1) scripts get.
// Each computes on its arguments only. Left out on purpose: chan and close
// (channels only make sense with spawn), spawn (no concurrency in the VM:
// it would escape the one-request-at-a-time model and clone the VM), and
// everything outside risor/builtins that Risor would add by default: open,
// cat, ls, cd, cp, getenv, setenv, unsetenv (modules/os), fetch (modules/http)
// and nslookup (modules/dns).
var pureBuiltins = []string{
	"all",         // truthiness of every item
	"any",         // truthiness of some item
	"assert",      // raise unless true
	"bool",        // conversion
	"buffer",      // in-memory byte buffer
	"byte_slice",  // conversion
	"byte",        // conversion
	"call",        // call a function with arguments
	"chr",         // int → one-rune string
	"chunk",       // split a list into chunks
	"coalesce",    // first non-nil argument
	"decode",      // base64/base32/hex/json/csv/urlquery/gzip decoding, in memory
	"delete",      // remove a map key
	"encode",      // the encodings of decode, in memory
	"error",       // make and raise an error
	"float_slice", // conversion
	"float",       // conversion
	"getattr",     // attribute by name
	"hash",        // digests (sha256, md5, …) of bytes
	"int",         // conversion
	"is_hashable", // type query
	"iter",        // iterator over a container
	"keys",        // keys of a map
	"len",         // length
	"list",        // conversion
	"make",        // sized list/map/set (chan is not a global, so not makeable)
	"map",         // conversion
	"ord",         // one-rune string → int
	"reversed",    // reversed copy
	"set",         // conversion
	"sorted",      // sorted copy
	"sprintf",     // formatting to a string
	"string",      // conversion
	"try",         // call, catching raised errors
	"type",        // type name
}

// Globals is the complete allowlist of what a script can name. The VM must
// be given these and no default globals (worker.eval compiles with exactly
// these names and runs with exactly these values), and NewOS(c, out) as its
// OS, so that the os, filepath and fmt modules and print reach
// the host only through the broker.
func Globals(c Caller, out *Output, args *object.Map) map[string]any {
	all := builtins.Builtins()
	g := make(map[string]any, len(pureBuiltins)+24)
	for _, name := range pureBuiltins {
		g[name] = all[name]
	}
	fmtBuiltins := modFmt.Builtins()
	// print, printf: write to the OS's Stdout, which is out.
	g["print"] = fmtBuiltins["print"]
	g["printf"] = fmtBuiltins["printf"]
	// errorf: an error value from a format, like fmt.Errorf.
	g["errorf"] = fmtBuiltins["errorf"]

	// Pure modules: they compute in memory only.
	g["base64"] = modBase64.Module()
	g["bytes"] = modBytes.Module()
	g["errors"] = modErrors.Module()
	g["json"] = modJSON.Module()
	g["math"] = modMath.Module()
	g["rand"] = modRand.Module()
	g["regexp"] = modRegexp.Module()
	g["strconv"] = modStrconv.Module()
	g["strings"] = modStrings.Module()
	// time: clocks and formatting; sleep only waits, under the broker's
	// wall-clock limit.
	g["time"] = modTime.Module()
	// fmt: printf/println write to the OS's Stdout, which is out.
	g["fmt"] = modFmt.Module()
	// filepath: path arithmetic; abs uses Getwd ("/") and walk_dir lists
	// directories, both through the OS, so through the broker.
	g["filepath"] = modFilepath.Module()
	// os: every function goes to the OS in the context, which is the
	// broker-backed OS; exit is replaced so that it stops the script.
	g["os"] = osModule()

	// The script's arguments.
	g["args"] = args
	// The rex modules.
	g["fs"] = newFSModule(c)
	g["proc"] = newProcModule(c)
	g["net"] = newNetModule(c)
	g["sys"] = newSysModule(c)
	g["svc"] = newSvcModule(c)
	g["log"] = newLogModule(out)
	g["metrics"] = newMetricsModule(out)
	g["alarms"] = newAlarmsModule(out)
	return g
}

// osModule is Risor's os module with exit replaced: Risor's exit calls
// OS.Exit and, for status 0, carries on running the script, since an
// interface method cannot stop the VM. Raising a fatal ExitError does.
func osModule() *object.Module {
	m := modOs.Module()
	exit := object.NewBuiltin("exit", func(ctx context.Context, args ...object.Object) object.Object {
		if len(args) > 1 {
			return object.NewArgsRangeError("os.exit", 0, 1, len(args))
		}
		code := 0
		if len(args) == 1 {
			switch v := args[0].(type) {
			case *object.Int:
				code = int(v.Value())
			case *object.Error:
				code = 1
			default:
				return object.TypeErrorf("type error: os.exit() expected an int or error (%s given)", args[0].Type())
			}
		}
		return raise(&ExitError{Code: code})
	})
	if err := m.Override("exit", exit); err != nil {
		// The module lost its exit: that is a Risor upgrade to look at, and
		// a panic here fails every test instead of leaving Risor's exit.
		panic(err)
	}
	return m
}
