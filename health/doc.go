// Package health serves herd's probes over HTTP, on an address of its own
// (HERD_HEALTH_ADDR, "off" for none), for the kubelet and for people:
//
//	/livez      liveness   200 "ok" or 503 with the reason
//	/readyz     readiness  200 "ok" or 503 with the reason
//	/startupz   start-up   200 "ok" or 503 with the reason
//	/status     JSON: the probe results, their checks and the supervisor's snapshot
//	/           a short index
//
// # Invariant
//
// The package only reads. Each request loads the cluster.Snapshot the
// supervisor published last (an atomic pointer load; a snapshot is never
// modified after it is published) and judges it with pure functions of
// (snapshot, Options, now). It holds no state of its own, takes no lock,
// sends nothing to the supervisor and never waits for it, so a slow or
// stuck supervisor cannot stall a probe and a probe never holds up the
// supervisor's loop. A stuck supervisor shows as an old Snapshot.Time.
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
// handlers do a pointer load and a few comparisons, so it answers within
// milliseconds even while the workers keep every CPU busy: the kernel's
// scheduler runs a task that mostly sleeps soon after it wakes
// (TestAnswersUnderCPULoad measures it).
package health
