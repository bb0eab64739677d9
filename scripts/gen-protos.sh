#!/usr/bin/env bash
# Regenerates the committed protobuf code from Protos/: protobuf-c (server) and Python _pb2 (client).
# --check: regenerate into a scratch folder and fail if the committed code differs (CI runs this).
set -euo pipefail
cd "$(dirname "$0")/.."
check=0; [ "${1:-}" = "--check" ] && check=1

out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
mkdir -p "$out/c" "$out/py"
protos=(Protos/r2ec/v1/*.proto)
protoc-c --proto_path=Protos --c_out="$out/c" "${protos[@]}"
protoc --proto_path=Protos --python_out="$out/py" "${protos[@]}"

# C: sources flat in the target, headers under include/r2ec/v1 (the generated #includes say "r2ec/v1/x.pb-c.h").
c_dir=Sources/R2ecProtoC
py_dir=clients/python/src/r2ec_client/_proto
stage=$(mktemp -d); trap 'rm -rf "$out" "$stage"' EXIT
mkdir -p "$stage/c/include/r2ec/v1" "$stage/py/r2ec/v1"
cp "$out"/c/r2ec/v1/*.pb-c.c "$stage/c/"
cp "$out"/c/r2ec/v1/*.pb-c.h "$stage/c/include/r2ec/v1/"
# Python: keep the package layout r2ec/v1 under _proto so the generated imports resolve via sys.path set in __init__.
cp "$out"/py/r2ec/v1/*_pb2.py "$stage/py/r2ec/v1/"
touch "$stage/py/r2ec/__init__.py" "$stage/py/r2ec/v1/__init__.py"

if [ $check = 1 ]; then
  status=0
  for f in "$stage"/c/*.c; do cmp -s "$f" "$c_dir/$(basename "$f")" || { echo "stale: $c_dir/$(basename "$f")"; status=1; }; done
  for f in "$stage"/c/include/r2ec/v1/*.h; do cmp -s "$f" "$c_dir/include/r2ec/v1/$(basename "$f")" || { echo "stale: $c_dir/include/r2ec/v1/$(basename "$f")"; status=1; }; done
  for f in "$stage"/py/r2ec/v1/*_pb2.py; do cmp -s "$f" "$py_dir/r2ec/v1/$(basename "$f")" || { echo "stale: $py_dir/r2ec/v1/$(basename "$f")"; status=1; }; done
  [ $status = 0 ] && echo "generated protobuf code is up to date" || echo "run scripts/gen-protos.sh and commit the result"
  exit $status
fi

rm -f "$c_dir"/*.pb-c.c "$c_dir"/include/r2ec/v1/*.pb-c.h
mkdir -p "$c_dir/include/r2ec/v1" "$py_dir/r2ec/v1"
cp "$stage"/c/*.c "$c_dir/"
cp "$stage"/c/include/r2ec/v1/*.h "$c_dir/include/r2ec/v1/"
rm -f "$py_dir"/r2ec/v1/*_pb2.py
cp -r "$stage"/py/r2ec "$py_dir/"
echo "regenerated $c_dir and $py_dir from ${#protos[@]} protos"
