package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/herd-sh/herd/cluster/memory"
)

// Watermark is a level of the container's working set: a share of the
// memory limit ("90%"), an amount ("230Mi"), or off.
type Watermark struct {
	Off     bool
	Percent float64 // of the limit, when set
	Bytes   int64   // when Percent is 0
}

func (m *Watermark) Set(s string) error {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, off) {
		*m = Watermark{Off: true}
		return nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v <= 0 || v > 100 {
			return errors.New("must be a share of the memory limit above 0% and at most 100% (90%), an amount (230Mi), or off")
		}
		*m = Watermark{Percent: v}
		return nil
	}
	n, err := memory.ParseQuantity(s)
	if err != nil {
		return fmt.Errorf("must be a share of the memory limit (90%%), an amount (230Mi), or off: %w", err)
	}
	if n == 0 {
		*m = Watermark{Off: true}
		return nil
	}
	*m = Watermark{Bytes: n}
	return nil
}

func (m *Watermark) String() string {
	switch {
	case m.Off:
		return off
	case m.Percent > 0:
		return strconv.FormatFloat(m.Percent, 'f', -1, 64) + "%"
	}
	return memory.FormatQuantity(m.Bytes)
}

// Of is the watermark in bytes for a memory limit (0: none known), 0 when
// off or when it is a share of a limit that is not known.
func (m Watermark) Of(limit int64) int64 {
	switch {
	case m.Off:
		return 0
	case m.Percent > 0:
		return int64(float64(limit) * m.Percent / 100)
	}
	return m.Bytes
}

// MaxRequests bounds HERD_MAX_REQUESTS and its jitter.
const MaxRequests = 1_000_000_000

// Requests is a number of connections, 0 to MaxRequests.
type Requests int

func (r *Requests) Set(s string) error {
	n, err := wholeNumber(strings.TrimSpace(s), 0, MaxRequests, "")
	if err != nil {
		return err
	}
	*r = Requests(n)
	return nil
}

func (r *Requests) String() string { return strconv.Itoa(int(*r)) }
