package config

import (
	"math"
	"strconv"
	"time"
)

// Idle says when a server stops itself, from the top-level key idle and,
// for a server of a size, sizes.NAME.idle (keys it sets win):
//
//	idle: {stop_after: 2h, max_age: off, warn_before: 10m}
//
// The agent inside the server decides, so it works on every backend. A
// server is active while a kernel is busy or prints, a terminal prints, a
// person uses the front door (not Jupyter's own polling), or a GPU is
// working; open but silent browser tabs do not count.
type Idle struct {
	// StopAfter stops the server once it has been idle this long: it saves
	// the workspace (repo), then stops. A Go duration (90m, 2h) or "off".
	// Default: 2h.
	StopAfter string `yaml:"stop_after"`

	// MaxAge stops the server this long after it started, even while it
	// works (with the same warning and save). A Go duration (24h) or "off".
	// Default: off.
	MaxAge string `yaml:"max_age"`

	// WarnBefore is how long before a stop the server says so: a banner on
	// its pages and a line in `spinbook status`. A Go duration or "off".
	// Default: 10m.
	WarnBefore string `yaml:"warn_before"`
}

// IdleTimers are Idle parsed; zero means off.
type IdleTimers struct {
	StopAfter  time.Duration
	MaxAge     time.Duration
	WarnBefore time.Duration
}

// Defaults of the idle keys.
const (
	defaultStopAfter  = "2h"
	defaultMaxAge     = "off"
	defaultWarnBefore = "10m"
)

// IdleFor returns the idle timers of a server of size ("" for none): the
// size's idle keys over the top-level ones (defaults filled by Validate).
// The config must be valid.
func (c *Config) IdleFor(size string) IdleTimers {
	i := c.Idle
	if s, ok := c.Sizes[size]; ok {
		i = mergeIdle(s.Idle, i)
	}
	stop, _ := parseIdleDuration(i.StopAfter)
	maxAge, _ := parseIdleDuration(i.MaxAge)
	warn, _ := parseIdleDuration(i.WarnBefore)
	return IdleTimers{StopAfter: stop, MaxAge: maxAge, WarnBefore: warn}
}

// PriceFor returns the hourly price in USD of a server of size, from
// sizes.NAME.price_per_hour; ok is false when the config gives none.
func (c *Config) PriceFor(size string) (price float64, ok bool) {
	s, found := c.Sizes[size]
	if !found || s.PricePerHour == "" {
		return 0, false
	}
	return s.Price, true
}

// mergeIdle returns over with its empty keys taken from under.
func mergeIdle(over, under Idle) Idle {
	if over.StopAfter == "" {
		over.StopAfter = under.StopAfter
	}
	if over.MaxAge == "" {
		over.MaxAge = under.MaxAge
	}
	if over.WarnBefore == "" {
		over.WarnBefore = under.WarnBefore
	}
	return over
}

// parseIdleDuration parses a positive Go duration or "off" (zero), or says
// what is wrong.
func parseIdleDuration(s string) (time.Duration, string) {
	if s == "off" {
		return 0, ""
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, "is not a duration (examples: 30m, 2h) or off"
	case d <= 0:
		return 0, "must be positive; write off to turn it off"
	case d < time.Second:
		return 0, "is shorter than a second; did you forget the unit (30m, 2h)?"
	}
	return d, ""
}

func (v *validation) idle() {
	v.idleKeys("idle", v.c.Idle)
	v.c.Idle = mergeIdle(v.c.Idle, Idle{StopAfter: defaultStopAfter, MaxAge: defaultMaxAge, WarnBefore: defaultWarnBefore})
	for _, name := range v.c.SizeNames() {
		s := v.c.Sizes[name]
		p := "sizes." + name
		v.idleKeys(p+".idle", s.Idle)
		if s.PricePerHour != "" {
			f, err := strconv.ParseFloat(s.PricePerHour, 64)
			if err != nil || f < 0 || f > 10000 || math.IsNaN(f) {
				v.problemf(p+".price_per_hour", "%q is not a price in USD per hour (examples: 0.19, 1.21)", s.PricePerHour)
			} else {
				s.Price = f
			}
		}
		v.c.Sizes[name] = s
	}
}

func (v *validation) idleKeys(path string, i Idle) {
	for _, k := range []struct{ key, val string }{
		{"stop_after", i.StopAfter}, {"max_age", i.MaxAge}, {"warn_before", i.WarnBefore},
	} {
		if k.val == "" {
			continue
		}
		if _, msg := parseIdleDuration(k.val); msg != "" {
			v.problemf(path+"."+k.key, "%q %s", k.val, msg)
		}
	}
}
