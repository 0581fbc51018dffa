package cpus

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultPeriodUS is the kernel's default CFS period, 100 ms, assumed when a
// cpu.max holds a quota without a period.
const DefaultPeriodUS = 100000

// Bandwidth is a CFS bandwidth limit: the cgroup's tasks may run QuotaUS
// microseconds of CPU time in every PeriodUS microseconds, that is
// QuotaUS/PeriodUS CPUs. Both are positive.
type Bandwidth struct {
	QuotaUS  int64 `json:"quota_us"`
	PeriodUS int64 `json:"period_us"`
	// PeriodAssumed is set when cpu.max held a quota alone and the period
	// is DefaultPeriodUS.
	PeriodAssumed bool `json:"period_assumed,omitempty"`
}

// CPUs returns the limit as an exact number of CPUs.
func (b Bandwidth) CPUs() Fraction {
	return newFraction(uint64(b.QuotaUS), uint64(b.PeriodUS))
}

// String renders the limit as quota/period, as the log line shows it.
func (b Bandwidth) String() string { return fmt.Sprintf("%d/%d", b.QuotaUS, b.PeriodUS) }

// ParseCPUMax parses the content of a cgroup v2 cpu.max file: "$MAX
// $PERIOD", where $MAX is a quota in microseconds or the word max.
//
//	"max 100000\n"    → ok false: no limit at this level
//	"150000 100000\n" → {150000 100000}: 1.5 CPUs
//	"500000"          → {500000 100000}, PeriodAssumed: the kernel accepts a
//	                    quota alone on write; the period is then the default
//
// Anything else (a zero or non-numeric period or quota, a third field, an
// empty file) is an error; the caller treats that level as "no limit here".
func ParseCPUMax(s string) (Bandwidth, bool, error) {
	f := strings.Fields(s)
	var b Bandwidth
	switch len(f) {
	case 1:
		b.PeriodUS, b.PeriodAssumed = DefaultPeriodUS, true
	case 2:
		p, err := positive(f[1])
		if err != nil {
			return Bandwidth{}, false, fmt.Errorf("cpu.max %q: period: %w", s, err)
		}
		b.PeriodUS = p
	default:
		return Bandwidth{}, false, fmt.Errorf("cpu.max %q: want \"max PERIOD\" or \"QUOTA PERIOD\"", s)
	}
	if f[0] == "max" {
		return Bandwidth{}, false, nil
	}
	q, err := positive(f[0])
	if err != nil {
		return Bandwidth{}, false, fmt.Errorf("cpu.max %q: quota: %w", s, err)
	}
	b.QuotaUS = q
	return b, true, nil
}

// ParseV1Quota parses the contents of a cgroup v1 cpu.cfs_quota_us and
// cpu.cfs_period_us. A quota of -1 is no limit at this level (the kernel
// writes -1 for "inherit the parent's limit"), and the period is then not
// looked at. Otherwise both must be positive whole numbers of microseconds.
func ParseV1Quota(quota, period string) (Bandwidth, bool, error) {
	q := strings.TrimSpace(quota)
	if q == "-1" {
		return Bandwidth{}, false, nil
	}
	qv, err := positive(q)
	if err != nil {
		return Bandwidth{}, false, fmt.Errorf("cpu.cfs_quota_us %q: %w", quota, err)
	}
	pv, err := positive(strings.TrimSpace(period))
	if err != nil {
		return Bandwidth{}, false, fmt.Errorf("cpu.cfs_period_us %q: %w", period, err)
	}
	return Bandwidth{QuotaUS: qv, PeriodUS: pv}, true, nil
}

var errNotPositive = errors.New("want a whole number from 1 to 9223372036854775807")

// positive parses a decimal integer in [1, MaxInt64]: ASCII digits only, no
// sign, no spaces.
func positive(s string) (int64, error) {
	if s == "" {
		return 0, errNotPositive
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, errNotPositive
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 0, errNotPositive
		}
		n = n*10 + d
	}
	if n == 0 {
		return 0, errNotPositive
	}
	return n, nil
}
