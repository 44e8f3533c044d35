package sdk

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/risor-io/risor/object"

	"github.com/rex-sh/rex/ipc"
	"github.com/rex-sh/rex/sdk/sdktest"
)

func TestStdoutCaptured(t *testing.T) {
	_, out, err := eval(t, sdktest.New(), `
		print("hello", 1, [2])
		printf("%s=%d\n", "n", args.n)
		fmt.println("via fmt")
		os.stdout.write("raw\n")`)
	if err != nil {
		t.Fatal(err)
	}
	got, trunc := out.Stdout()
	if want := "hello 1 [2]\nn=3\nvia fmt\nraw\n"; got != want || trunc {
		t.Errorf("stdout = %q (truncated %v), want %q", got, trunc, want)
	}
}

func TestStdoutTruncated(t *testing.T) {
	out := NewOutput(8)
	out.Write([]byte("12345"))
	out.Write([]byte("6789"))
	out.Write([]byte("more"))
	if got, trunc := out.Stdout(); got != "12345678" || !trunc {
		t.Errorf("stdout = %q, %v", got, trunc)
	}
	// A cut inside a multi-byte rune is trimmed to keep valid UTF-8.
	out = NewOutput(5)
	out.Write([]byte("abcdé"))
	if got, trunc := out.Stdout(); got != "abcd" || !trunc {
		t.Errorf("stdout = %q, %v", got, trunc)
	}
	out = NewOutput(6)
	out.Write([]byte("abcdé"))
	if got, trunc := out.Stdout(); got != "abcdé" || trunc {
		t.Errorf("stdout = %q, %v", got, trunc)
	}
}

func TestDecodeArgs(t *testing.T) {
	m, err := DecodeArgs([]byte(`{"s":"x","i":3,"neg":-7,"f":1.5,"e":1e3,"huge":1e300,"b":true,"z":null,"l":[1,"a"],"m":{"k":[false]}}`))
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]object.Type{
		"s": object.STRING, "i": object.INT, "neg": object.INT, "f": object.FLOAT, "e": object.INT,
		"huge": object.FLOAT, "b": object.BOOL, "z": object.NIL, "l": object.LIST, "m": object.MAP,
	}
	for k, typ := range types {
		if got := m.Get(k).Type(); got != typ {
			t.Errorf("%s: type %s, want %s", k, got, typ)
		}
	}
	if got := asJSON(t, m); got != `{"b":true,"e":1000,"f":1.5,"huge":1e+300,"i":3,"l":[1,"a"],"m":{"k":[false]},"neg":-7,"s":"x","z":null}` {
		t.Errorf("round trip = %s", got)
	}
	if m, err := DecodeArgs(nil); err != nil || m.Size() != 0 {
		t.Errorf("empty args: %v, %v", m, err)
	}
	for _, bad := range []string{`[1]`, `"x"`, `{`, `{} {}`, `3`} {
		_, err := DecodeArgs([]byte(bad))
		if ipc.CodeOf(err) != ipc.CodeInvalid {
			t.Errorf("%s: err = %v", bad, err)
		}
	}
	if got := asJSON(t, mustEval(t, sdktest.New(), `"hello " + args.name`)); got != `"hello world"` {
		t.Errorf("args in a script = %s", got)
	}
}

func TestToJSON(t *testing.T) {
	ts := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	set := object.NewSet([]object.Object{object.NewInt(2), object.NewInt(1)})
	cases := []struct {
		in   object.Object
		want string
	}{
		{object.Nil, ""},
		{nil, ""},
		{object.NewString("a\"b"), `"a\"b"`},
		{object.NewInt(-3), `-3`},
		{object.NewFloat(2.5), `2.5`},
		{object.NewFloat(math.NaN()), `"NaN"`},
		{object.NewFloat(math.Inf(-1)), `"-Inf"`},
		{object.True, `true`},
		{object.NewByteSlice([]byte("text")), `"text"`},
		{object.NewByteSlice([]byte{0xff, 0x00}), `"/wA="`},
		{object.NewTime(ts), `"2024-05-01T10:00:00Z"`},
		{object.NewList([]object.Object{object.NewInt(1), object.Nil}), `[1,null]`},
		{set, `[1,2]`},
		{object.NewFloatSlice([]float64{1, 0.5}), `[1,0.5]`},
		{object.NewMap(map[string]object.Object{"b": object.NewInt(1), "a": object.NewString("x")}), `{"a":"x","b":1}`},
		{object.NewError(ipc.Errorf(ipc.CodeIO, "boom")), `"boom"`},
		{object.NewBuiltin("len", nil), `"builtin(len)"`},
	}
	for _, tc := range cases {
		b, err := ToJSON(tc.in)
		if err != nil || string(b) != tc.want {
			t.Errorf("ToJSON(%v) = %s, %v; want %s", tc.in, b, err, tc.want)
		}
		if len(b) > 0 && !json.Valid(b) {
			t.Errorf("ToJSON(%v) = %s is not valid JSON", tc.in, b)
		}
	}
	// A list that holds itself must end with an error, not a stack overflow.
	self := object.NewList(nil)
	self.Append(self)
	if _, err := ToJSON(self); ipc.CodeOf(err) != ipc.CodeInvalid {
		t.Errorf("self-containing list: %v", err)
	}
	big := object.NewList(nil)
	for i := 0; i < 100; i++ {
		big.Append(object.NewString(strings.Repeat("x", MaxOutput/50)))
	}
	if _, err := ToJSON(big); ipc.CodeOf(err) != ipc.CodeLimit {
		t.Errorf("oversized output: %v", err)
	}
	got := asJSON(t, mustEval(t, sdktest.New(), `{"fn": func() {}, "mod": strings}`))
	if !json.Valid([]byte(got)) {
		t.Errorf("functions and modules: %s", got)
	}
}

func TestTelemetry(t *testing.T) {
	_, out, err := eval(t, sdktest.New(), `
		log.info("started")
		log.warn(42)
		log.debug("d")
		log.error("e")
		metrics.publish("disk_free", 12.5, {unit: "GB", dimensions: {host: "a", n: 2}})
		metrics.publish("count", 3)
		alarms.publish("disk_low", {path: "/var", free: 12})
		alarms.publish("bare")`)
	if err != nil {
		t.Fatal(err)
	}
	logs := out.Logs()
	if len(logs) != 4 || logs[0].Level != "info" || logs[0].Message != "started" || logs[1].Message != "42" || logs[1].Level != "warn" {
		t.Errorf("logs = %+v", logs)
	}
	if _, err := time.Parse(time.RFC3339, logs[0].Time); err != nil {
		t.Errorf("log time %q: %v", logs[0].Time, err)
	}
	ms := out.Metrics()
	if len(ms) != 2 || ms[0].Name != "disk_free" || ms[0].Value != 12.5 || ms[0].Unit != "GB" ||
		ms[0].Dimensions["host"] != "a" || ms[0].Dimensions["n"] != "2" || ms[1].Value != 3 {
		t.Errorf("metrics = %+v", ms)
	}
	as := out.Alarms()
	if len(as) != 2 || as[0].Type != "disk_low" || string(as[0].Details) != `{"free":12,"path":"/var"}` || as[1].Details != nil {
		t.Errorf("alarms = %+v", as)
	}
	for _, bad := range []string{
		`metrics.publish("rex.runs", 1)`,
		`metrics.publish("REX_x", 1)`,
		`alarms.publish("rex_alarm")`,
		`metrics.publish("", 1)`,
		`metrics.publish("m", "1")`,
		`metrics.publish("m", 1, {units: "x"})`,
		`metrics.publish("m", 1, {dimensions: {a: [1]}})`,
		`log.info()`,
		`alarms.publish("big", strings.repeat("x", 5000))`,
	} {
		if _, _, err := eval(t, sdktest.New(), bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	_, out, err = eval(t, sdktest.New(), `for i := 0; i < 1001; i++ { log.info("x") }`)
	if ipc.CodeOf(err) != ipc.CodeLimit || len(out.Logs()) != MaxRecords {
		t.Errorf("log cap: err %v, %d lines", err, len(out.Logs()))
	}
	_, out, _ = eval(t, sdktest.New(), `log.info(strings.repeat("é", 5000))`)
	if l := out.Logs()[0].Message; len(l) > MaxLogMessage+len(truncMarker) || !strings.HasSuffix(l, truncMarker) {
		t.Errorf("long log line kept %d bytes", len(l))
	}
}
