package config

import (
	"math"
	"strconv"
	"strings"
)

// SpotMode is how a size uses EC2 spot capacity (sizes.NAME.spot).
type SpotMode int

// The spot modes.
const (
	SpotOff    SpotMode = iota // on-demand (spot: false, or no key)
	SpotOn                     // spot only (spot: true)
	SpotPrefer                 // spot, else on-demand (spot: prefer)
)

// String is the mode as written in the config.
func (m SpotMode) String() string {
	switch m {
	case SpotOn:
		return "true"
	case SpotPrefer:
		return "prefer"
	}
	return "false"
}

// sizeSpot checks sizes.NAME.spot and spot_price and fills their parsed
// forms.
func (v *validation) sizeSpot(p string, s *Size) {
	switch strings.ToLower(s.Spot) { // YAML writes a boolean true, True or TRUE
	case "", "false":
		s.SpotMode = SpotOff
	case "true":
		s.SpotMode = SpotOn
	case "prefer":
		s.SpotMode = SpotPrefer
	default:
		v.problemf(p+".spot", "%q is not a spot setting: use true (spot capacity only; up fails when AWS has none), "+
			"prefer (spot, else on-demand when AWS has no spot capacity) or false (on-demand)", s.Spot)
	}
	if s.SpotMode != SpotOff && v.c.Backend != "" && v.c.Backend != "aws" {
		v.problemf(p+".spot", "spot capacity is an EC2 feature: it needs backend aws (the backend is %s); remove the key", v.c.Backend)
	}
	if s.SpotPrice != "" {
		f, err := strconv.ParseFloat(s.SpotPrice, 64)
		switch {
		case err != nil || f < 0 || f > 10000 || math.IsNaN(f):
			v.problemf(p+".spot_price", "%q is not a price in USD per hour (examples: 0.12, 0.45)", s.SpotPrice)
		case s.SpotMode == SpotOff && s.Spot != "":
			v.problemf(p+".spot_price", "the size runs on-demand (spot: %s), so a spot price is never used: set spot: true or prefer, or remove spot_price", s.Spot)
		case s.SpotMode == SpotOff:
			v.problemf(p+".spot_price", "the size runs on-demand, so a spot price is never used: add spot: true (or prefer), or set price_per_hour for the on-demand price")
		default:
			s.SpotPriceUSD = f
		}
	}
}
