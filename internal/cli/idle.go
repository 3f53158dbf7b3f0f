package cli

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/spinbook/spinbook/internal/agent"
	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/cost"
	"github.com/spinbook/spinbook/internal/ui"
)

// idleSpec is the agent's idle rules and price for a server of size ("":
// none): the config's timers, and the size's price_per_hour or, on aws,
// the instance type's on-demand price; for a spot size (aws) the size's
// spot_price or that price less cost.AWSSpotDiscount, with the on-demand
// price kept for a fallback to on-demand.
func idleSpec(cfg *config.Config, size string) *backend.Idle {
	t := cfg.IdleFor(size)
	spec := &backend.Idle{StopAfter: t.StopAfter, MaxAge: t.MaxAge, WarnBefore: t.WarnBefore, Size: size}
	if p, ok := cfg.PriceFor(size); ok {
		spec.PricePerHour = &p
	} else if cfg.Backend == "aws" {
		it := config.DefaultInstanceType
		if s, ok := cfg.Sizes[size]; ok && s.InstanceType != "" {
			it = s.InstanceType
		}
		if p, ok := cost.AWSOnDemand(it); ok {
			spec.PricePerHour = &p
		}
	}
	if s, ok := cfg.Sizes[size]; ok && cfg.Backend == "aws" && s.SpotMode != config.SpotOff {
		spec.OnDemandPerHour = spec.PricePerHour
		switch {
		case s.SpotPrice != "":
			spot := s.SpotPriceUSD
			spec.PricePerHour = &spot
		case spec.PricePerHour != nil:
			spot := cost.AWSSpot(*spec.PricePerHour)
			spec.PricePerHour = &spot
		}
		spec.SpotPrice = spec.PricePerHour != nil
	}
	return spec
}

// IdleJSON is what status and ls add for a running server, from its agent.
type IdleJSON struct {
	Size          string `json:"size,omitempty"`
	UptimeSeconds int64  `json:"uptime_seconds"`
	IdleSeconds   int64  `json:"idle_seconds"`
	// StopsAt is when the server stops itself unless something changes;
	// absent when nothing will.
	StopsAt        *time.Time `json:"stops_at,omitempty"`
	StopsInSeconds *int64     `json:"stops_in_seconds,omitempty"`
	// Warning is set once a stop is near.
	Warning    string `json:"warning,omitempty"`
	StopReason string `json:"stop_reason,omitempty"`
	// StopBlocked says why a due stop waits, starting with what failed
	// ("push failed: ..."): the server stays up until its work is saved.
	StopBlocked string `json:"stop_blocked,omitempty"`
	// CostPerHour and CostSoFar are estimates in USD; absent when the
	// size has no price.
	CostPerHour *float64 `json:"cost_per_hour,omitempty"`
	CostSoFar   *float64 `json:"cost_so_far,omitempty"`
	// SpotPrice: the price is an estimate of spot capacity's
	// (sizes.NAME.spot_price, or cost.AWSSpotDiscount off on-demand).
	SpotPrice bool `json:"spot_price,omitempty"`
	// Spot is what AWS said about a spot server's instance (a rebalance
	// recommendation, an interruption notice).
	Spot string `json:"spot,omitempty"`
	// Jupyter is which Jupyter the agent started and its version.
	Jupyter string `json:"jupyter,omitempty"`
}

// idleOf asks srv's agent about activity, the coming stop and the cost;
// nil when the server does not run or cannot say.
func idleOf(ctx context.Context, srv backend.Server) *IdleJSON {
	if srv.State != backend.Running || srv.ControlToken == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var st agent.StatusResponse
	if code, err := control(ctx, srv, http.MethodGet, "status", nil, &st); err != nil || code != http.StatusOK || st.Idle == nil {
		return nil
	}
	i := idleFromAgent(st.Idle)
	i.Jupyter = st.Jupyter
	return i
}

func idleFromAgent(s *agent.IdleStatus) *IdleJSON {
	return &IdleJSON{
		Size:           s.Size,
		UptimeSeconds:  int64(time.Since(s.StartedAt) / time.Second),
		IdleSeconds:    s.IdleSeconds,
		StopsAt:        s.StopsAt,
		StopsInSeconds: s.StopsInSeconds,
		Warning:        s.Warning,
		StopReason:     s.Reason,
		StopBlocked:    s.StopBlocked,
		CostPerHour:    s.CostPerHour,
		CostSoFar:      s.CostSoFar,
		SpotPrice:      s.SpotPrice,
		Spot:           s.Spot,
	}
}

// idleOfAll asks every running server at once. A backend whose List
// leaves out control tokens (docker) is asked for each server's status.
func idleOfAll(ctx context.Context, be backend.Backend, servers []backend.Server) []*IdleJSON {
	out := make([]*IdleJSON, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		if s.State != backend.Running {
			continue
		}
		wg.Go(func() {
			if s.ControlToken == "" {
				if full, err := be.Status(ctx, s.User); err == nil {
					s = full
				}
			}
			out[i] = idleOf(ctx, s)
		})
	}
	wg.Wait()
	return out
}

// idleRows are status's lines about activity, the coming stop and cost.
func idleRows(i *IdleJSON) [][]string {
	if i == nil {
		return nil
	}
	var rows [][]string
	if i.Jupyter != "" {
		rows = append(rows, []string{"jupyter:", i.Jupyter})
	}
	if i.Size != "" {
		rows = append(rows, []string{"size:", i.Size})
	}
	rows = append(rows, []string{"idle for:", ui.Duration(time.Duration(i.IdleSeconds) * time.Second)})
	stops := "never (idle.stop_after and idle.max_age are off)"
	if i.StopsAt != nil {
		stops = "in " + ui.Duration(time.Until(*i.StopsAt)) + " (" + i.StopsAt.Local().Format(time.DateTime) + "; " + i.StopReason + ")"
	}
	if i.StopBlocked != "" {
		stops = "now (" + i.StopReason + "), but the server stays up until its work is saved; it tries again by itself"
	}
	rows = append(rows, []string{"stops:", stops})
	if i.StopBlocked != "" {
		rows = append(rows, []string{"stop blocked:", i.StopBlocked})
	}
	if i.Warning != "" {
		rows = append(rows, []string{"warning:", "this server " + i.Warning})
	}
	if i.Spot != "" {
		rows = append(rows, []string{"spot:", i.Spot})
	}
	if i.CostPerHour != nil {
		rows = append(rows, []string{"cost:", costText(i)})
	}
	return rows
}

func costText(i *IdleJSON) string {
	if i == nil || i.CostPerHour == nil {
		return "-"
	}
	text := "$" + strconv.FormatFloat(*i.CostSoFar, 'f', 2, 64) + " so far, $" +
		strconv.FormatFloat(*i.CostPerHour, 'f', -1, 64) + "/h"
	if i.SpotPrice {
		text += " (spot, estimated)"
	}
	return text
}

// idleColumns are ls's SIZE, IDLE, STOPS IN and COST columns.
func idleColumns(i *IdleJSON) []string {
	if i == nil {
		return []string{"-", "-", "-", "-"}
	}
	size, stops := i.Size, "never"
	if size == "" {
		size = "-"
	}
	if i.StopsAt != nil {
		stops = ui.Duration(time.Until(*i.StopsAt))
		if i.Warning != "" {
			stops += " (!)"
		}
	}
	if i.StopBlocked != "" {
		stops = "blocked"
	}
	return []string{size, ui.Duration(time.Duration(i.IdleSeconds) * time.Second), stops, costText(i)}
}
