package bench

import (
	"math"
	"slices"
	"time"
)

// Summary describes a sample of durations.
type Summary struct {
	N        int
	Failures int // attempts that produced no sample (timeouts, errors)
	Median   time.Duration
	P95      time.Duration
	P99      time.Duration
	Max      time.Duration
}

// Summarize sorts a copy of samples and returns its median, 95th and 99th
// percentile and maximum (nearest rank, so P99 of fewer than 100 samples
// is the maximum).
func Summarize(samples []time.Duration, failures int) Summary {
	s := slices.Clone(samples)
	slices.Sort(s)
	return Summary{
		N:        len(s),
		Failures: failures,
		Median:   Percentile(s, 50),
		P95:      Percentile(s, 95),
		P99:      Percentile(s, 99),
		Max:      Percentile(s, 100),
	}
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method, or 0 for an empty slice. The median of an even
// number of samples is the mean of the middle two.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if p == 50 && n%2 == 0 {
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// MedianFloat returns the median of xs (the mean of the middle two for an
// even count), or 0 for none.
func MedianFloat(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[n/2]
}

// MedianDuration returns the median of ds.
func MedianDuration(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return Percentile(s, 50)
}
