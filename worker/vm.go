package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"

	"github.com/risor-io/risor/compiler"
	"github.com/risor-io/risor/errz"
	"github.com/risor-io/risor/object"
	ros "github.com/risor-io/risor/os"
	"github.com/risor-io/risor/parser"
	"github.com/risor-io/risor/vm"

	"github.com/rex-sh/rex/ipc"
	"github.com/rex-sh/rex/sdk"
)

// Run evaluates the script of start with only the globals of sdk.Globals,
// sending every host operation through c (an *ipc.Client in the worker), and
// returns what the broker needs to build the run's result. It never panics:
// a panic in the VM or the sdk becomes an INTERNAL_EXCEPTION.
//
// Run has no deadline of its own: a long builtin cannot be interrupted from
// inside, so the broker enforces the wall-clock limit by killing the worker.
func Run(start *ipc.Start, c sdk.Caller) *ipc.WorkerResult {
	return Prepare(c)(start)
}

// Prepare does the part of Run that does not depend on the script: it
// builds the globals (Risor's modules and rex's), the captured output and
// the broker-backed OS for c, and returns what runs a script with them,
// once. Building the globals is about half of a short script's run, so a
// worker started ahead of its run calls Prepare while it waits for the
// script (see sandbox).
func Prepare(c sdk.Caller) func(start *ipc.Start) *ipc.WorkerResult {
	out := sdk.NewOutput(0)
	bos := sdk.NewOS(c, out)
	globals := sdk.Globals(c, out, nil)
	return func(start *ipc.Start) (res *ipc.WorkerResult) {
		out.SetMaxStdout(start.MaxStdout)
		res = &ipc.WorkerResult{}
		defer func() {
			if r := recover(); r != nil {
				res = &ipc.WorkerResult{ErrType: ipc.ErrInternal, ErrMessage: fmt.Sprintf("internal error in the worker: %v", r)}
			}
			fillOutput(res, out)
		}()
		args, err := sdk.DecodeArgs(start.Args)
		if err != nil {
			res.ErrType, res.ErrMessage = ipc.ErrValidation, err.Error()
			return res
		}
		globals["args"] = args
		// Both the context and the option carry the OS: builtins look in
		// the context first, and without either Risor falls back to the
		// real OS.
		ctx := ros.WithOS(context.Background(), bos)
		obj, err := eval(ctx, start, globals, bos)
		if err != nil {
			classify(res, err)
			return res
		}
		output, err := sdk.ToJSON(obj)
		if err != nil {
			classify(res, fmt.Errorf("the script's result cannot be returned: %w", err))
			return res
		}
		res.Output = output
		return res
	}
}

// eval parses, compiles and runs the script with exactly globals (no
// default globals, no importer) and bos as its OS. It is what risor.Eval
// does with WithoutDefaultGlobals, WithGlobals, WithOS and WithFilename,
// without importing the risor package itself, which links every default
// module (http among them, and with it net/http and crypto/tls) into the
// worker: a larger binary that starts slower, for code no script may reach.
func eval(ctx context.Context, start *ipc.Start, globals map[string]any, bos ros.OS) (object.Object, error) {
	ast, err := parser.Parse(ctx, string(start.Script), parser.WithFile(start.ScriptName))
	if err != nil {
		return nil, err
	}
	names := slices.Sorted(maps.Keys(globals))
	code, err := compiler.Compile(ast, compiler.WithGlobalNames(names), compiler.WithFilename(start.ScriptName))
	if err != nil {
		return nil, err
	}
	return vm.Run(ctx, code, vm.WithGlobals(globals), vm.WithOS(bos))
}

// warmScript touches the compiler, the VM and a few builtin modules.
const warmScript = `m := {"a": [1, 2.5, "x"], "b": true}
s := strings.to_upper(json.marshal(m)) + string(len(sorted([3, 1, 2])))
try(func() { error("warm") }, s)`

// warmCaller answers nothing: the warm-up script makes no host request, and
// if it ever did the request would fail here instead of reaching the broker.
type warmCaller struct{}

func (warmCaller) Call(ipc.Op, any, any) (*os.File, error) {
	return nil, ipc.Errorf(ipc.CodeUnsupported, "no broker during warm-up")
}

// Warm runs a fixed script once with no broker, so that a worker started
// ahead of its run (the broker's pool) has paid for cold code and data
// before the run's clock starts. It must only run after lockdown.
func Warm() {
	_ = Run(&ipc.Start{Script: []byte(warmScript), ScriptName: "warm.risor", Args: []byte("{}"), MaxStdout: 1 << 10}, warmCaller{})
}

func fillOutput(res *ipc.WorkerResult, out *sdk.Output) {
	res.Stdout, res.StdoutTruncated = out.Stdout()
	res.Logs = out.Logs()
	res.Metrics = out.Metrics()
	res.Alarms = out.Alarms()
}

// classify sets the error of res from the error that ended the script. The
// type comes from the *ipc.Error code when the error is or wraps one (Risor
// keeps the Go error of a raised error object as its value), never from the
// error's text.
func classify(res *ipc.WorkerResult, err error) {
	var exit *sdk.ExitError
	if errors.As(err, &exit) {
		if exit.Code != 0 {
			res.ErrType = ipc.ErrScript
			res.ErrMessage = fmt.Sprintf("script exited with status %d", exit.Code)
		}
		return
	}
	res.ErrType, res.ErrMessage = ipc.ErrScript, message(err)
	var ie *ipc.Error
	if !errors.As(err, &ie) {
		return
	}
	switch ie.Code {
	case ipc.CodeDenied:
		res.ErrType = ipc.ErrAccessDenied
		res.Denial = ie.Denial
	case ipc.CodeLimit:
		res.ErrType = ipc.ErrResourceLimit
	case ipc.CodeProtocol:
		res.ErrType = ipc.ErrCommunication
	case ipc.CodeTimeout:
		res.ErrType = ipc.ErrTimeout
	case ipc.CodeInternal:
		res.ErrType = ipc.ErrInternal
	}
}

// message prefers Risor's friendly form of parse and compile errors, which
// names the file, line and column.
func message(err error) string {
	var fe errz.FriendlyError
	if errors.As(err, &fe) {
		return fe.FriendlyErrorMessage()
	}
	return err.Error()
}
