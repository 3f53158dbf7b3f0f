package bench

import (
	"context"
	"net/http"
	"time"
)

// probe is one URL checked repeatedly while kernels spin.
type probe struct {
	name   string
	url    string
	header http.Header
}

// probeUnderLoad starts kernels kernels on j, lets them take the cores for
// settle, then GETs every probe in turn, each on a new connection with a
// 2 s timeout, every interval for d; a non-200 answer or a timeout is a
// failure. It returns the samples per probe name.
func probeUnderLoad(ctx context.Context, j jupyterAPI, kernels int, probes []probe, settle, d, interval time.Duration) (map[string][]time.Duration, map[string]int, error) {
	s, err := spin(ctx, j, kernels)
	if err != nil {
		return nil, nil, err
	}
	defer s.stop(context.WithoutCancel(ctx))
	select {
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case <-time.After(settle):
	}
	client := newClient(false, 2*time.Second)
	samples := map[string][]time.Duration{}
	failures := map[string]int{}
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		next := time.Now().Add(interval)
		for _, p := range probes {
			t0 := time.Now()
			if err := get(ctx, client, p.url, p.header); err != nil {
				failures[p.name]++
				continue
			}
			samples[p.name] = append(samples[p.name], time.Since(t0))
		}
		time.Sleep(time.Until(next))
	}
	return samples, failures, ctx.Err()
}
