package health

import (
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/herd-sh/herd/cluster"
)

// Endpoint paths.
const (
	pathLive    = "/livez"
	pathReady   = "/readyz"
	pathStartup = "/startupz"
	pathStatus  = "/status"
	pathMetrics = "/metrics"
	pathIndex   = "/"
)

const index = `herd health endpoints (GET or HEAD):
/livez      liveness: the supervisor is turning and workers have been listening (?verbose)
/readyz     readiness: started up, enough workers listening, not draining (?verbose)
/startupz   start-up: the first cohort of workers has all listened (?verbose)
/status     the supervisor's state, every worker and the probe results as JSON
/metrics    Prometheus metrics (herd_*, process_*, go_*)

Probes take ?verbose to list every check and ?exclude=NAME (repeatable) to
skip a check by name, as the kube-apiserver does.
`

type handler struct {
	snap    func() *cluster.Snapshot
	opts    Options
	created time.Time
	metrics http.Handler
}

// Handler serves /livez, /readyz and /startupz (each with ?verbose and
// ?exclude), /status (JSON), /metrics (Prometheus, from a registry of its
// own) and / (a short index). Each request calls snap once and judges what
// it returns with opts; the handler never blocks and never calls into the
// supervisor, so snap must be a plain load of the published snapshot
// (cluster.Supervisor.Snapshot). snap may return nil before the first
// publish: /startupz and /readyz then answer 503, /livez 200 while within
// opts.LivenessGrace of the call to Handler, and /status 503.
//
// Answers carry Content-Type text/plain (application/json for /status,
// the negotiated exposition format for /metrics) and Cache-Control:
// no-store; methods other than GET and HEAD get 405. snap must not be nil.
func Handler(snap func() *cluster.Snapshot, opts Options) http.Handler {
	if snap == nil {
		panic("health: Handler: snap is nil")
	}
	opts = opts.withDefaults()
	metrics := promhttp.HandlerFor(newRegistry(snap, opts), promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
	return &handler{snap: snap, opts: opts, created: opts.Now(), metrics: metrics}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	switch r.URL.Path {
	case pathLive, pathReady, pathStartup, pathStatus, pathMetrics, pathIndex:
	default:
		writeText(w, r, http.StatusNotFound, "404 page not found: see / for the endpoints\n")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		writeText(w, r, http.StatusMethodNotAllowed, "405 method not allowed: use GET or HEAD\n")
		return
	}
	switch r.URL.Path {
	case pathIndex:
		writeText(w, r, http.StatusOK, index)
		return
	case pathMetrics:
		h.metrics.ServeHTTP(w, r)
		return
	}

	s, now := h.snap(), h.opts.Now()
	q := r.URL.Query()
	_, verbose := q["verbose"]
	excluded := q["exclude"]
	switch r.URL.Path {
	case pathLive:
		_, checks := live(s, h.opts, now, h.created)
		writeProbe(w, r, "livez", checks, excluded, verbose)
	case pathReady:
		_, checks := ready(s, h.opts, now)
		writeProbe(w, r, "readyz", checks, excluded, verbose)
	case pathStartup:
		_, checks := startup(s)
		writeProbe(w, r, "startupz", checks, excluded, verbose)
	case pathStatus:
		h.writeStatus(w, r, s, now)
	}
}

// writeProbe writes a probe's answer: "ok" or the failed checks' reasons,
// one a line; with verbose, every check as kube-apiserver lists them. The
// checks named in excluded pass whatever they found ("[+]name excluded:
// ok"); a name that matches no check is ignored, and verbose says so.
func writeProbe(w http.ResponseWriter, r *http.Request, name string, checks []Check, excluded []string, verbose bool) {
	checks, unknown := exclude(checks, excluded)
	ok, _ := result(checks...)
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	var b strings.Builder
	switch {
	case verbose:
		for _, c := range checks {
			if c.Excluded {
				b.WriteString("[+]" + c.Name + " excluded: ok\n")
			} else if c.OK {
				b.WriteString("[+]" + c.Name + " ok\n")
			} else {
				b.WriteString("[-]" + c.Name + " failed: " + c.Reason + "\n")
			}
		}
		if len(unknown) > 0 {
			b.WriteString("warn: some health checks cannot be excluded: no matches for " + quoted(unknown) + "\n")
		}
		if ok {
			b.WriteString(name + " check passed\n")
		} else {
			b.WriteString(name + " check failed\n")
		}
	case ok:
		b.WriteString("ok\n")
	default:
		for _, reason := range reasons(checks) {
			b.WriteString(reason + "\n")
		}
	}
	writeText(w, r, code, b.String())
}

// exclude marks the checks named in names as excluded and passing, and
// returns the names that match no check, each once, in the order given.
// The kube-apiserver takes exclude the same way: one name per parameter,
// repeatable, an unknown name only warned about
// (k8s.io/apiserver/pkg/server/healthz).
func exclude(checks []Check, names []string) ([]Check, []string) {
	if len(names) == 0 {
		return checks, nil
	}
	out := slices.Clone(checks)
	var unknown []string
	for _, n := range names {
		found := false
		for i := range out {
			if out[i].Name == n {
				out[i] = Check{Name: n, OK: true, Excluded: true}
				found = true
			}
		}
		if !found && !slices.Contains(unknown, n) {
			unknown = append(unknown, n)
		}
	}
	return out, unknown
}

func quoted(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ",")
}

// reasons lists the failed checks' reasons, each once, in check order.
func reasons(checks []Check) []string {
	var out []string
	for _, c := range checks {
		if !c.OK && !slices.Contains(out, c.Reason) {
			out = append(out, c.Reason)
		}
	}
	return out
}

func writeText(w http.ResponseWriter, r *http.Request, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	writeBody(w, r, code, []byte(body))
}

// writeBody sends code and body, or only the headers to a HEAD request.
func writeBody(w http.ResponseWriter, r *http.Request, code int, body []byte) {
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		w.Write(body) //nolint:errcheck // the client went away; nothing to do
	}
}
