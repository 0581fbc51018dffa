package health

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/herd-sh/herd/cluster"
)

// Endpoint paths.
const (
	pathLive    = "/livez"
	pathReady   = "/readyz"
	pathStartup = "/startupz"
	pathStatus  = "/status"
	pathIndex   = "/"
)

const index = `herd health endpoints (GET or HEAD):
/livez      liveness: the supervisor is turning and workers have been listening (?verbose)
/readyz     readiness: started up, enough workers listening, not draining (?verbose)
/startupz   start-up: the first cohort of workers has all listened (?verbose)
/status     the supervisor's state and the probe results as JSON
`

// Status is the JSON body of /status.
type Status struct {
	// Started, Ready and Live are the results of /startupz, /readyz and
	// /livez at the time of the request.
	Started bool `json:"started"`
	Ready   bool `json:"ready"`
	Live    bool `json:"live"`
	// Reasons holds, for each failing probe ("started", "ready", "live"),
	// its failed checks' reasons joined by "; ".
	Reasons map[string]string `json:"reasons,omitempty"`
	// Checks holds every check of each probe, under the same keys.
	Checks map[string][]Check `json:"checks"`
	// Listening counts the workers listening now.
	Listening int `json:"listening"`
	// Snapshot is the supervisor's state the results were computed from;
	// null before the first publish.
	Snapshot *cluster.Snapshot `json:"snapshot"`
}

type handler struct {
	snap    func() *cluster.Snapshot
	opts    Options
	created time.Time
}

// Handler serves /livez, /readyz and /startupz (each with ?verbose),
// /status (JSON) and / (a short index). Each request calls snap once and
// judges what it returns with opts; the handler never blocks and never
// calls into the supervisor, so snap must be a plain load of the published
// snapshot (cluster.Supervisor.Snapshot). snap may return nil before the
// first publish: /startupz and /readyz then answer 503, /livez 200 while
// within opts.LivenessGrace of the call to Handler, and /status 503.
//
// Answers carry Content-Type text/plain (application/json for /status)
// and Cache-Control: no-store; methods other than GET and HEAD get 405.
// snap must not be nil.
func Handler(snap func() *cluster.Snapshot, opts Options) http.Handler {
	if snap == nil {
		panic("health: Handler: snap is nil")
	}
	opts = opts.withDefaults()
	return &handler{snap: snap, opts: opts, created: opts.Now()}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	switch r.URL.Path {
	case pathLive, pathReady, pathStartup, pathStatus, pathIndex:
	default:
		writeText(w, r, http.StatusNotFound, "404 page not found: see / for the endpoints\n")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		writeText(w, r, http.StatusMethodNotAllowed, "405 method not allowed: use GET or HEAD\n")
		return
	}
	if r.URL.Path == pathIndex {
		writeText(w, r, http.StatusOK, index)
		return
	}

	s, now := h.snap(), h.opts.Now()
	_, verbose := r.URL.Query()["verbose"]
	switch r.URL.Path {
	case pathLive:
		ok, checks := live(s, h.opts, now, h.created)
		writeProbe(w, r, "livez", ok, checks, verbose)
	case pathReady:
		ok, checks := ready(s, h.opts, now)
		writeProbe(w, r, "readyz", ok, checks, verbose)
	case pathStartup:
		ok, checks := startup(s)
		writeProbe(w, r, "startupz", ok, checks, verbose)
	case pathStatus:
		h.writeStatus(w, r, s, now)
	}
}

// writeProbe writes a probe's answer: "ok" or the failed checks' reasons,
// one a line; with verbose, every check as kube-apiserver lists them.
func writeProbe(w http.ResponseWriter, r *http.Request, name string, ok bool, checks []Check, verbose bool) {
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	var b strings.Builder
	switch {
	case verbose:
		for _, c := range checks {
			if c.OK {
				b.WriteString("[+]" + c.Name + " ok\n")
			} else {
				b.WriteString("[-]" + c.Name + " failed: " + c.Reason + "\n")
			}
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

func (h *handler) writeStatus(w http.ResponseWriter, r *http.Request, s *cluster.Snapshot, now time.Time) {
	st := Status{Snapshot: s, Checks: make(map[string][]Check, 3)}
	var checks []Check
	st.Started, checks = startup(s)
	st.note("started", st.Started, checks)
	st.Ready, checks = ready(s, h.opts, now)
	st.note("ready", st.Ready, checks)
	st.Live, checks = live(s, h.opts, now, h.created)
	st.note("live", st.Live, checks)
	code := http.StatusOK
	if s == nil {
		code = http.StatusServiceUnavailable
	} else {
		st.Listening = s.Listening()
	}
	body, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		writeText(w, r, http.StatusInternalServerError, "status: "+err.Error()+"\n")
		return
	}
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	writeBody(w, r, code, body)
}

func (st *Status) note(probe string, ok bool, checks []Check) {
	st.Checks[probe] = checks
	if !ok {
		if st.Reasons == nil {
			st.Reasons = make(map[string]string, 3)
		}
		st.Reasons[probe] = strings.Join(reasons(checks), "; ")
	}
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
