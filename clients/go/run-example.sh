#!/usr/bin/env bash
# Generates Go stubs from Protos/ (protoc-gen-go, protoc-gen-go-grpc) into a scratch GOPATH at the import path of
# the protos' go_package option, and runs clients/go/example against a server:
#   clients/go/run-example.sh GRPC_HOST:PORT CUSTOM_HOST:PORT [TOKEN]
# Needs Debian's golang-go, golang-google-grpc-dev, protoc-gen-go and protoc-gen-go-grpc (GOPATH mode, no module
# downloads: the libraries come from /usr/share/gocode).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
gopath=$(mktemp -d); trap 'rm -rf "$gopath"' EXIT
out="$gopath/src"
mkdir -p "$out"
protoc --proto_path="$repo/Protos" --go_out="$out" --go-grpc_out="$out" "$repo"/Protos/r2ec/v1/*.proto
mkdir -p "$out/r2ec-example"
cp "$here/example/main.go" "$out/r2ec-example/"
cd "$out/r2ec-example"
GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOCACHE="$gopath/cache" GOFLAGS= go build -o "$gopath/example" .
"$gopath/example" "$@"
