// Package health serves herd's probes over HTTP, on an address of its own
// (HERD_HEALTH_ADDR, "off" for none), for the kubelet and for people:
//
//	/livez      liveness   200 "ok" or 503 with the reason
//	/readyz     readiness  200 "ok" or 503 with the reason
//	/startupz   start-up   200 "ok" or 503 with the reason
//	/status     JSON: version, policy, CPU budget, every worker, the probe
//	            results and the supervisor's snapshot
//	/metrics    Prometheus metrics: herd_*, plus the process and Go collectors
//	/           a short index
//
// # Invariant
//
// The package only reads. Each request loads the cluster.Snapshot the
// supervisor published last (an atomic pointer load; a snapshot is never
// modified after it is published) and judges it with pure functions of
// (snapshot, Options, now). It holds no state of its own, sends nothing to
// the supervisor and never waits for it, so a slow or stuck supervisor
// cannot stall a probe and a probe never holds up the supervisor's loop. A
// stuck supervisor shows as an old Snapshot.Time. The only other reads are
// Options.Handoffs (the rr totals, under their own short lock, not the
// loop's) and Options.Orphans (an atomic load), for /status and /metrics.
//
// Metrics are computed at scrape time from those same reads (constant
// metrics of a custom prometheus.Collector): nothing is counted twice or
// kept in two places. The registry is the handler's own, never the global
// one. Labels are bounded: states and exit reasons from fixed sets, worker
// slot indexes, listen addresses; never pids.
//
// # Rules
//
// Each probe is a list of checks; it passes when all of them pass.
//
//   - /startupz: "started": Snapshot.StartedUp, set once every worker of the
//     first cohort has been listening once. It never goes back to 503.
//     While it fails, the reason counts the slots whose current worker is
//     or has been listening ("2 of 4 workers of the first cohort have
//     listened").
//   - /readyz: "heartbeat" (Snapshot.Time younger than StaleAfter),
//     "started" (as /startupz), "shutdown" (not Snapshot.Draining: from
//     SIGTERM/SIGINT on, readiness fails at once) and "listening" (at least
//     ReadyMin workers in state listening: "0 workers listening, 1 needed").
//   - /livez: "heartbeat" (as above: "supervisor stuck: last heartbeat 12s
//     ago") and "listening", which passes while herd has not started up
//     yet (/startupz judges that time), while herd is draining (workers stop
//     listening on purpose), while some worker is listening, or while the
//     last moment one was (Snapshot.LastListening, or a later
//     WorkerInfo.Listening) is at most LivenessGrace ago: "no worker has
//     been listening for 45s (HERD_LIVENESS_GRACE=30s)". So a crash loop
//     fails readiness at once and liveness after the grace.
//
// A failing "started" or "listening" check names the slots in a crash loop
// or whose restarts are being delayed ("slot 2 in a crash loop").
//
// Before the first snapshot, /startupz, /readyz and /status answer 503 and
// /livez 200 for LivenessGrace after Handler was called, then 503.
//
// # Answers
//
// Probe bodies are "ok\n", or the failed checks' reasons one a line. With
// ?verbose (any value) every check is listed as the kube-apiserver does:
//
//	[+]heartbeat ok
//	[-]listening failed: no worker has been listening for 45s (HERD_LIVENESS_GRACE=30s)
//	livez check failed
//
// ?exclude=name skips a check the way the kube-apiserver's healthz handler
// does (k8s.io/apiserver/pkg/server/healthz): one name per parameter,
// repeatable, no comma lists; the check passes and ?verbose lists it as
// "[+]name excluded: ok"; a name that matches no check of the probe is
// ignored, and ?verbose ends with "warn: some health checks cannot be
// excluded: no matches for "name"". /status always judges every check.
//
// Text answers are text/plain; charset=utf-8, /status is application/json;
// every answer carries Cache-Control: no-store. Only GET and HEAD are
// served (405 with Allow otherwise); other paths are 404. /status answers
// 200 whenever a snapshot exists, whatever the probes say: it is for
// people and tools, not for the kubelet.
//
// # Server
//
// Start listens before it returns, so a port in use is an error at start
// that names HERD_HEALTH_ADDR. The server is small by construction: header
// read timeout 2 s, read and write timeouts 5 s, 8 KiB of headers; its
// probe handlers do a pointer load and a few comparisons (about 2 µs;
// /metrics about 0.5 ms with the process and Go collectors), so the answer
// time is the kernel's scheduling delay: a task that mostly sleeps runs
// soon after it wakes, even while the workers keep every CPU busy
// (TestAnswersUnderCPULoad and the root package's H3 test measure it;
// BenchmarkProbe the handler alone).
package health
