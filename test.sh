#!/usr/bin/env bash
# herd's test command: installs what the tests use on a fresh Debian machine,
# then runs every test with the race detector, vet and gofmt.
set -euo pipefail
cd "$(dirname "$0")"

need=()
for tool in tini:tini strace:strace unshare:util-linux nsenter:util-linux setsid:util-linux script:bsdutils runc:runc python3:python3 node:nodejs wrk:wrk; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
go vet ./...
go test -race -count=1 -timeout 12m ./...

# Every parser's fuzz target, a few seconds each: they must never panic.
for pkg in ./cluster/cpus ./cluster ./cluster/ipc ./init; do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZTIME:-3s}" "$pkg"
  done
done
