package host

import (
	"strings"
	"testing"
)

func TestRedactCommand(t *testing.T) {
	cases := map[string]string{
		"mysql --user=app --password=hunter2 db":             "mysql --user=app --password=[REDACTED] db",
		"curl -H x --token abc123 https://a/":                "curl -H x --token [REDACTED] https://a/",
		"env API_KEY=k1 DB_PASSWORD=p2 PATH=/bin run":        "env API_KEY=[REDACTED] DB_PASSWORD=[REDACTED] PATH=/bin run",
		"git clone https://bob:s3cret@example.com/r.git":     "git clone https://bob:[REDACTED]@example.com/r.git",
		"app --secret-file /etc/x --verbose":                 "app --secret-file /etc/x --verbose",
		"app --auth --verbose":                               "app --auth --verbose",
		"sleep 100":                                          "sleep 100",
		"psql postgres://u:pw@db:5432/x --pwd=1 --session s": "psql postgres://u:[REDACTED]@db:5432/x --pwd=[REDACTED] --session [REDACTED]",
	}
	for in, want := range cases {
		if got := strings.Join(RedactCommand(strings.Fields(in)), " "); got != want {
			t.Errorf("%q\n got %q\nwant %q", in, got, want)
		}
	}
}
