#!/usr/bin/env bash
# herd's test command: installs what the tests use on a fresh Debian machine,
# then runs every test with the race detector, vet and gofmt, and checks
# the Kubernetes packaging (helm installed with go install).
set -euo pipefail
cd "$(dirname "$0")"

need=()
for tool in tini:tini gunicorn:gunicorn strace:strace unshare:util-linux nsenter:util-linux setsid:util-linux script:bsdutils runc:runc python3:python3 node:nodejs npm:npm wrk:wrk systemd-notify:systemd; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The real Node apps some acceptance tests serve (Express, ws), at the
# versions test/acceptance/testdata/npm/package-lock.json pins.
if [ ! -d test/acceptance/testdata/npm/node_modules ]; then
  npm ci --prefix test/acceptance/testdata/npm --no-audit --no-fund --loglevel=error
fi

# Every go test below runs with -json: internal/testtotals shows the events
# as go test's usual text (each package's ok line, the output of failed
# tests) and, when the script ends, whether it passed or not, prints one
# line of totals over all the runs: the tests and subtests that passed,
# failed and were skipped, and the package runs that failed.
results=$(mktemp -d)
print_totals() {
  local rc=$? files
  shopt -s nullglob
  files=("$results"/*.json)
  if [ ${#files[@]} -gt 0 ] && [ -x "$results/testtotals" ]; then
    "$results/testtotals" -sum "${files[@]}" || true
  fi
  rm -rf "$results"
  exit "$rc"
}
trap print_totals EXIT
go build -o "$results/testtotals" ./internal/testtotals
totals="$results/testtotals"

unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
go vet ./...
# The worker package Go servers import builds on a developer's Mac or Windows
# machine, where the cluster channel is a stub returning ipc.ErrNotSupported
# (run here as js/wasm under node), and herd builds for arm64 images.
for goos in darwin windows; do
  GOOS=$goos go vet ./cluster/ipc ./cluster/worker
  GOOS=$goos go build ./cluster/ipc ./cluster/worker ./examples/goserver
done
GOOS=linux GOARCH=arm64 go build -o /dev/null .
GOOS=linux GOARCH=arm64 go build -o /dev/null ./examples/goserver
GOOS=js GOARCH=wasm go test -json -count=1 -exec "$(go env GOROOT)/lib/wasm/go_js_wasm_exec" ./cluster/ipc ./cluster/worker |
  tee "$results/wasm.json" | "$totals"
go test -json -race -count=1 -timeout 12m ./... | tee "$results/race.json" | "$totals"

# Kubernetes packaging (docs/acceptance.md P1 and P2): the Helm chart, the
# Dockerfiles, the examples and a pod under runc. helm comes from the Go
# module proxy at a pinned version (about 2.5 minutes the first time, then
# the module and build caches make it quick); the chart's checks that need
# the Kubernetes API types live in the nested module deploy/ (see its
# doc.go). Keep kube_version equal to deploy/render_test.go's kubeVersion.
helm_version=v3.22.0
kube_version=1.33.0
gobin="$(go env GOPATH)/bin"
export PATH="$gobin:$PATH"
if ! go version -m "$gobin/helm" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+helm\.sh/helm/v3[[:space:]]+${helm_version}[[:space:]]"; then
  go install "helm.sh/helm/v3/cmd/helm@${helm_version}"
fi
helm lint --strict charts/herd
for values in deploy/testdata/values/*.yaml; do
  helm lint --strict --quiet charts/herd -f "$values"
done
helm template herd charts/herd --kube-version "$kube_version" >/dev/null
(cd deploy && go vet ./... && go test -json -race -count=1 -timeout 10m ./... | tee "$results/deploy.json" | "$totals")

# Every parser's fuzz target, 15,000 inputs each (seconds): they must never
# panic. A count rather than a duration: under load Go's fuzzing coordinator
# can miss a duration's deadline and report "context deadline exceeded"
# although nothing failed; that one message alone earns a second try (whose
# events replace the first try's in the totals).
fuzz() {
  go test -json -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZTIME:-15000x}" "$pkg" 2>&1 |
    tee "$results/fuzz-${pkg##*/}-${target}.json" | "$totals"
}
for pkg in ./cluster/cgroup ./cluster/cpus ./cluster/memory ./cluster ./cluster/ipc ./cluster/listen ./cluster/notify ./init; do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
    if ! out=$(fuzz); then
      echo "$out"
      if echo "$out" | grep -q 'context deadline exceeded' && ! echo "$out" | grep -q 'Failing input'; then
        echo "retrying $target once"
        fuzz
      else
        exit 1
      fi
    else
      echo "$out" | tail -1
    fi
  done
done
