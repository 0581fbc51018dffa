// Package health will serve herd's probes and metrics over HTTP on an address
// of its own: /livez, /readyz, /startupz, /status and /metrics, computed from
// the snapshot the cluster supervisor publishes (cluster.Snapshot). It reads
// that snapshot and never blocks the supervisor.
//
// Until that lands the package holds only this description; herd starts no
// health server yet.
package health
