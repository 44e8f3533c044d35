# rex — build, demo, test. `make demo` and `make test` do all set-up on a
# fresh Debian machine with Go (they install libseccomp-dev when run as root).

GO      ?= go
BIN     := bin
TAGS    := netgo,osusergo
TEST_TIMEOUT ?= 20m

.PHONY: all build deps demo test vet fuzz hostile bench clean install

all: build

deps:
	@if [ ! -f /usr/include/seccomp.h ] || ! ls /usr/lib/*/libseccomp.a >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing libseccomp-dev (it compiles and checks rex-worker's seccomp filter)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libseccomp-dev >/dev/null; \
		else \
			echo "rex needs libseccomp-dev: run 'sudo apt-get install libseccomp-dev' (Debian/Ubuntu) and retry" >&2; exit 1; \
		fi; \
	fi

# rex-worker runs in an empty root with no dynamic loader, and locks every
# thread down at once with AllThreadsSyscall: it is built without cgo (hence
# static); its seccomp filter comes precompiled by libseccomp (see seccomp).
# rex-exec is built twice from one package: the client (tag rexthin, no
# broker in it: it starts faster, and agents start it once per script) and
# the engine, rex-exec-standalone, which the client re-executes into for
# standalone mode (see cmd/rex-exec/engine_thin.go).
# On amd64 the worker's entry point is its own (cmd/rex-worker/entry_amd64.s):
# it sets what every thread inherits before the Go runtime starts one.
WORKER_LDFLAGS = $(if $(filter amd64,$(shell $(GO) env GOARCH)),-ldflags=-E=main.rexEntry)
# The client's too (cmd/rex-exec/entry_thin_amd64.s): it re-executes a
# standalone run into the engine before the Go runtime starts.
CLIENT_LDFLAGS = $(if $(filter amd64,$(shell $(GO) env GOARCH)),-ldflags=-E=main.rexExecEntry)
# And the engine's (cmd/rex-exec/entry_engine_amd64.s): as root it starts a
# standalone run's worker before its own Go runtime, so that both start at once.
ENGINE_LDFLAGS = $(if $(filter amd64,$(shell $(GO) env GOARCH)),-ldflags=-E=main.rexEngineEntry)

build: deps
	@mkdir -p $(BIN)
	$(GO) build -tags $(TAGS) -o $(BIN)/ ./cmd/rex-broker ./cmd/rex-policy
	$(GO) build -tags $(TAGS),rexthin $(CLIENT_LDFLAGS) -o $(BIN)/rex-exec ./cmd/rex-exec
	$(GO) build -tags $(TAGS) $(ENGINE_LDFLAGS) -o $(BIN)/rex-exec-standalone ./cmd/rex-exec
	CGO_ENABLED=0 $(GO) build -tags $(TAGS) $(WORKER_LDFLAGS) -o $(BIN)/rex-worker ./cmd/rex-worker

# The demo: one script, one policy, standalone mode. The script reads a file
# the policy allows and tries one it does not; the result shows both.
demo: build
	@mkdir -p /tmp/rex-demo && echo "hello from rex" > /tmp/rex-demo/hello.txt
	@$(BIN)/rex-exec --policy policies/examples/demo.cedar --output pretty-json examples/demo.risor; \
		code=$$?; echo "rex-exec exit code: $$code"; [ $$code -eq 0 ]

test: build
	$(GO) vet ./...
	$(GO) vet -tags rexthin ./cmd/rex-exec
	REX_BIN_DIR=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	@# The attacks again, on workers whose user namespace the broker makes
	@# (unprivileged standalone rex-exec, hosts without unprivileged user namespaces).
	REX_TEST_SPAWN=legacy REX_BIN_DIR=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./internal/hostile

# Packages with fuzz targets; FUZZTIME (default 30s) is per target.
# (searched recursively: broker covers broker/host)
FUZZ_PKGS := ipc authz broker cmd/rex-exec internal/jsonstr
fuzz: build
	GO=$(GO) FUZZTIME=$${FUZZTIME:-30s} .ci/fuzz $(FUZZ_PKGS)

# install: binaries to $(PREFIX)/bin, rex-worker and rex-exec-standalone to $(PREFIX)/libexec/rex,
# systemd units (with $(PREFIX) substituted) to $(UNITDIR), and the example
# policies to /etc/rex/policies only when that directory does not exist yet,
# so an operator's policies are never overwritten. DESTDIR stages a package.
PREFIX  ?= /usr/local
UNITDIR ?= /etc/systemd/system
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/libexec/rex $(DESTDIR)$(UNITDIR)
	install -m 0755 $(BIN)/rex-exec $(BIN)/rex-broker $(BIN)/rex-policy $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 $(BIN)/rex-worker $(BIN)/rex-exec-standalone $(DESTDIR)$(PREFIX)/libexec/rex/
	for u in rex-broker.service rex-broker.socket; do \
		sed 's|/usr/local/|$(PREFIX)/|g' dist/systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u; \
	done
	@if [ ! -d $(DESTDIR)/etc/rex/policies ]; then \
		install -d -m 0755 $(DESTDIR)/etc/rex/policies && \
		install -m 0644 policies/examples/*.cedar $(DESTDIR)/etc/rex/policies/ && \
		echo "installed example policies in $(DESTDIR)/etc/rex/policies: review them before starting rex-broker"; \
	else echo "$(DESTDIR)/etc/rex/policies exists: left as it is"; fi
	@echo "next: groupadd --system rex; systemctl daemon-reload; systemctl enable --now rex-broker.socket"

# The hostile suite (SECURITY-TESTS.md): every attack as a test named after
# its id, then the table. Strict: a skipped attack is a failure.
# REX_HOSTILE_LONG=1 runs the long floods and smuggling loops.
HOSTILE_RUN := '^Test[A-Z][0-9][0-9]_|^TestSeccompProfile|^FuzzDispatch'
hostile: build
	@REX_BIN_DIR=$(CURDIR)/$(BIN) REX_TEST_ROOT=1 REX_TEST_STRICT=1 \
		$(GO) test -count=1 -json -timeout $(TEST_TIMEOUT) -run $(HOSTILE_RUN) ./internal/hostile ./broker ./seccomp ./internal/e2e \
		| $(GO) run ./internal/hostile/cmd/report

# Benchmarks against baselines measured in the same run (needs root and
# bubblewrap); the table goes to bench/RESULTS.md when it changes.
bench: build
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq bubblewrap >/dev/null; } || true
	bench/run.sh

clean:
	rm -rf $(BIN)
