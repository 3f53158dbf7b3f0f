package backend

import "time"

// Idle is when the agent stops its server by itself (config idle and
// sizes.NAME.idle), and what the server costs. Zero durations are off.
type Idle struct {
	// StopAfter stops the server after this long with no activity.
	StopAfter time.Duration `json:"stop_after,omitempty"`
	// MaxAge stops the server this long after it started, even if active.
	MaxAge time.Duration `json:"max_age,omitempty"`
	// WarnBefore is how long before a stop the agent warns.
	WarnBefore time.Duration `json:"warn_before,omitempty"`

	// Size is the server's size (`up --size`), "" for none; PricePerHour
	// its price in USD per hour, nil when unknown.
	Size         string   `json:"size,omitempty"`
	PricePerHour *float64 `json:"price_per_hour,omitempty"`
	// SpotPrice: PricePerHour is an estimate of spot capacity's price
	// (sizes.NAME.spot); OnDemandPerHour is the price should the server
	// run on-demand instead (spot: prefer with no spot capacity), nil
	// when unknown.
	SpotPrice       bool     `json:"spot_price,omitempty"`
	OnDemandPerHour *float64 `json:"on_demand_per_hour,omitempty"`

	// Release is a command the agent runs as the last step of a stop it
	// decided itself (idle or max_age), after saving and stopping Jupyter,
	// to release what the server costs where exiting is not enough — aws:
	// delete the server's own stack, with a task role scoped to it.
	// Empty: the agent only exits, which is all local and docker need.
	Release []string `json:"release,omitempty"`
}
