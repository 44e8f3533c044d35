#!/usr/bin/env bash
# bench/run.sh — rex against its baselines, measured in the same run.
# Usage: bench/run.sh [N]   (from the repository root, after `make build`)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-30}
command -v bwrap >/dev/null || { echo "bench needs bubblewrap: apt-get install bubblewrap" >&2; exit 1; }
go build -o bin/cmdbench ./bench/cmdbench
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo '"hello"' > "$tmp/hello.risor"
printf 'permit(principal, action == file_system::Action::"stat", resource == file_system::Dir::"/");\n' > "$tmp/p.cedar"
# Debian's /usr/bin/true needs the loader under /lib64: bind /usr and add the
# merged-/usr symlinks, or bwrap cannot exec it at all.
BWRAP=(bwrap --unshare-all --die-with-parent --ro-bind /usr /usr --symlink usr/lib64 /lib64 --symlink usr/lib /lib /usr/bin/true)
echo "machine: $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%d)"
bin/cmdbench -n "$N" -name "hello standalone vs bwrap" -target 1.5 -- bin/rex-exec --policy "$tmp/p.cedar" "$tmp/hello.risor" -- "${BWRAP[@]}"
# File reads (issue 3): fs.cat of 4 KiB per call vs open+read+close in Go,
# and 256 MiB through an fs.open descriptor vs cat, in the same run.
go build -o bin/fsbench ./bench/fsbench
bin/fsbench -rex bin/rex-exec -n 5000 -runs 5
