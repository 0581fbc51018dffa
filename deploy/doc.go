// Package deploy checks how herd is packaged and deployed: the Helm chart
// in ../charts/herd rendered by helm and strict-decoded into the Kubernetes
// API types, the Dockerfiles read offline, the examples served under herd,
// and a pod run under runc from the container spec the chart renders.
//
// It is a module of its own so that the Kubernetes API types stay out of
// herd's module graph and binary. It holds tests only:
//
//	cd deploy && go vet ./... && go test ./...
//
// The tests need helm (test.sh installs a pinned version with go install),
// and, for the examples and the pod, root, runc, node and python3. Like
// herd's own tests, a test whose tool is missing fails when CI=true and is
// skipped otherwise.
package deploy
