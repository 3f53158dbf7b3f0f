package bench

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// WrkResult is what one wrk run measured.
type WrkResult struct {
	ReqPerSec float64
	P50, P99  time.Duration
	Requests  int
	Errors    int // socket errors plus non-2xx/3xx responses
}

// WrkOptions is how wrk loads a URL.
type WrkOptions struct {
	Duration    time.Duration
	Threads     int
	Connections int
}

// runWrk runs wrk against url with the given request headers.
func runWrk(ctx context.Context, o WrkOptions, url string, headers []string) (WrkResult, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Duration+30*time.Second)
	defer cancel()
	args := []string{
		"-t" + strconv.Itoa(o.Threads), "-c" + strconv.Itoa(o.Connections),
		"-d" + strconv.Itoa(int(o.Duration.Seconds())) + "s", "--timeout", "5s", "--latency",
	}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	out, err := exec.CommandContext(ctx, "wrk", append(args, url)...).CombinedOutput()
	if err != nil {
		return WrkResult{}, fmt.Errorf("wrk %s: %w\n%s", url, err, out)
	}
	r, err := ParseWrk(string(out))
	if err != nil {
		return WrkResult{}, fmt.Errorf("wrk %s: %w", url, err)
	}
	if r.Requests > 0 && r.Errors*10 > r.Requests {
		return r, fmt.Errorf("wrk %s: %d of %d requests failed\n%s", url, r.Errors, r.Requests, out)
	}
	return r, nil
}

// ParseWrk reads wrk's --latency report.
func ParseWrk(out string) (WrkResult, error) {
	var r WrkResult
	var haveRate, have50, have99 bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("requests/sec %q: %w", f[1], err)
			}
			r.ReqPerSec, haveRate = v, true
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, err
			}
			if f[0] == "50%" {
				r.P50, have50 = d, true
			} else {
				r.P99, have99 = d, true
			}
		case len(f) >= 2 && f[1] == "requests" && len(f) >= 3 && f[2] == "in":
			r.Requests, _ = strconv.Atoi(f[0])
		case len(f) >= 3 && f[0] == "Socket" && f[1] == "errors:":
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for i := 2; i+1 < len(f); i += 2 {
				n, _ := strconv.Atoi(strings.TrimSuffix(f[i+1], ","))
				r.Errors += n
			}
		case len(f) == 5 && f[0] == "Non-2xx":
			n, _ := strconv.Atoi(f[4])
			r.Errors += n
		}
	}
	if !haveRate || !have50 || !have99 {
		return r, fmt.Errorf("no Requests/sec or latency distribution in wrk's output (was --latency given?)")
	}
	return r, nil
}

// parseWrkDuration reads wrk's durations: 850.00us, 2.73ms, 1.05s, 2.00m.
func parseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("wrk duration %q: %w", s, err)
			}
			return time.Duration(v * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("wrk duration %q: unknown unit", s)
}
