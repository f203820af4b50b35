package simulate

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"
)

// Summary is what a run sent and what the api answered.
type Summary struct {
	// Sent is the number of requests made (each has an answer or a
	// transport error).
	Sent int
	// Events is the number of distinct events among them.
	Events int
	// Duplicates is the number of requests that redelivered an event.
	Duplicates int
	// OutOfOrder is the number of events delivered after an event their
	// customer's stream sends later (in dispatch order; concurrency adds
	// its own reordering on top).
	OutOfOrder int
	// PoisonSent is the number of distinct poison events sent.
	PoisonSent int
	// OK is the number of 2xx answers.
	OK int
	// NotOK counts the other answers by status code.
	NotOK map[int]int
	// TransportErrors counts requests without an answer (refused, reset,
	// timed out); FirstTransportError is the first of them.
	TransportErrors     int
	FirstTransportError string
	// Latency of the requests that got an answer.
	Latency Latency
	// Duration is the wall time of the run.
	Duration time.Duration
	// Accepted lists, sorted, the ids of the events that got at least one
	// 2xx: each must end up applied exactly once, or parked if poison.
	Accepted []string
	// AcceptedPoison lists, sorted, the poison events among Accepted: each
	// must end up parked in the DLQ.
	AcceptedPoison []string
}

// Latency holds nearest-rank percentiles.
type Latency struct {
	P50, P90, P99, Max time.Duration
}

// Failed reports whether any request got a non-2xx answer or none at all.
func (s Summary) Failed() bool {
	return s.TransportErrors > 0 || len(s.NotOK) > 0
}

// Print writes a readable table of s.
func (s Summary) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	rate := 0.0
	if s.Duration > 0 {
		rate = float64(s.Sent) / s.Duration.Seconds()
	}
	fmt.Fprintf(tw, "sent\t%d\t(%d events, %d duplicates, %d out of order, %d poison)\n",
		s.Sent, s.Events, s.Duplicates, s.OutOfOrder, s.PoisonSent)
	fmt.Fprintf(tw, "2xx\t%d\t\n", s.OK)
	codes := make([]int, 0, len(s.NotOK))
	for c := range s.NotOK {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		fmt.Fprintf(tw, "%d\t%d\t\n", c, s.NotOK[c])
	}
	if s.TransportErrors > 0 {
		fmt.Fprintf(tw, "transport errors\t%d\t(first: %s)\n", s.TransportErrors, s.FirstTransportError)
	} else {
		fmt.Fprintf(tw, "transport errors\t0\t\n")
	}
	fmt.Fprintf(tw, "latency\tp50 %s\tp90 %s  p99 %s  max %s\n",
		round(s.Latency.P50), round(s.Latency.P90), round(s.Latency.P99), round(s.Latency.Max))
	fmt.Fprintf(tw, "duration\t%s\t(%.1f requests/s)\n", round(s.Duration), rate)
	return tw.Flush()
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

// MarshalJSON writes durations as seconds and status codes as strings.
func (s Summary) MarshalJSON() ([]byte, error) {
	notOK := make(map[string]int, len(s.NotOK))
	for c, n := range s.NotOK {
		notOK[strconv.Itoa(c)] = n
	}
	accepted, poison := s.Accepted, s.AcceptedPoison
	if accepted == nil {
		accepted = []string{}
	}
	if poison == nil {
		poison = []string{}
	}
	return json.Marshal(struct {
		Sent                int                `json:"sent"`
		Events              int                `json:"events"`
		Duplicates          int                `json:"duplicates"`
		OutOfOrder          int                `json:"out_of_order"`
		PoisonSent          int                `json:"poison_sent"`
		OK                  int                `json:"ok"`
		NotOK               map[string]int     `json:"not_ok"`
		TransportErrors     int                `json:"transport_errors"`
		FirstTransportError string             `json:"first_transport_error,omitempty"`
		Latency             map[string]float64 `json:"latency_seconds"`
		Duration            float64            `json:"duration_seconds"`
		Accepted            []string           `json:"accepted"`
		AcceptedPoison      []string           `json:"accepted_poison"`
	}{
		s.Sent, s.Events, s.Duplicates, s.OutOfOrder, s.PoisonSent, s.OK, notOK,
		s.TransportErrors, s.FirstTransportError,
		map[string]float64{
			"p50": s.Latency.P50.Seconds(), "p90": s.Latency.P90.Seconds(),
			"p99": s.Latency.P99.Seconds(), "max": s.Latency.Max.Seconds(),
		},
		s.Duration.Seconds(), accepted, poison,
	})
}
