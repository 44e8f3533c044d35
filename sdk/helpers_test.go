package sdk

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/risor-io/risor"
	"github.com/risor-io/risor/object"
	ros "github.com/risor-io/risor/os"

	"github.com/rex-sh/rex/ipc"
	"github.com/rex-sh/rex/sdk/sdktest"
)

// eval runs script the way the worker does: no default globals, Globals,
// and the broker-backed OS in both the option and the context.
func eval(t *testing.T, c Caller, script string) (object.Object, *Output, error) {
	t.Helper()
	out := NewOutput(0)
	args, err := DecodeArgs([]byte(`{"name":"world","n":3}`))
	if err != nil {
		t.Fatal(err)
	}
	bos := NewOS(c, out)
	obj, err := risor.Eval(ros.WithOS(context.Background(), bos), script,
		risor.WithoutDefaultGlobals(),
		risor.WithGlobals(Globals(c, out, args)),
		risor.WithOS(bos))
	return obj, out, err
}

// mustEval runs script and fails the test on a script error.
func mustEval(t *testing.T, c Caller, script string) object.Object {
	t.Helper()
	obj, _, err := eval(t, c, script)
	if err != nil {
		t.Fatalf("script failed: %v\n%s", err, script)
	}
	return obj
}

// asJSON renders obj with ToJSON for compact comparisons.
func asJSON(t *testing.T, obj object.Object) string {
	t.Helper()
	b, err := ToJSON(obj)
	if err != nil {
		t.Fatalf("ToJSON: %v", err)
	}
	return string(b)
}

// fileWith returns a read-only descriptor on a temporary file holding data,
// the way the broker passes one.
func fileWith(t *testing.T, data []byte) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// wantIPCError checks that err is or wraps an *ipc.Error with code.
func wantIPCError(t *testing.T, err error, code ipc.Code) *ipc.Error {
	t.Helper()
	var ie *ipc.Error
	if !errors.As(err, &ie) {
		t.Fatalf("error %v (%T) is not an *ipc.Error", err, err)
	}
	if ie.Code != code {
		t.Fatalf("code = %v, want %v (%v)", ie.Code, code, err)
	}
	return ie
}

func lastCall(t *testing.T, f *sdktest.Fake) sdktest.Call {
	t.Helper()
	calls := f.Calls()
	if len(calls) == 0 {
		t.Fatal("no broker call was made")
	}
	return calls[len(calls)-1]
}
