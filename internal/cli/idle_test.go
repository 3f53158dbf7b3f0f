package cli

import (
	"testing"

	"github.com/spinbook/spinbook/internal/config"
)

// TestIdleSpecSpotPrice: a spot size's price is its spot_price, or the
// on-demand price less cost.AWSSpotDiscount, marked as a spot estimate
// with the on-demand price kept for a fallback; other sizes keep theirs.
func TestIdleSpecSpotPrice(t *testing.T) {
	cfg, err := config.Parse([]byte(`backend: aws
access: {allow: [203.0.113.0/24]}
aws: {certificate_arn: "arn:aws:acm:us-east-1:123456789012:certificate/x"}
sizes:
  spot: {instance_type: g5.2xlarge, spot: true}
  priced: {instance_type: g5.2xlarge, spot: prefer, spot_price: "0.5"}
  own: {instance_type: g5.2xlarge, spot: prefer, price_per_hour: "2"}
  unknown: {instance_type: x9.large, spot: true}
  steady: {instance_type: g5.2xlarge}
`), "spinbook.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ptr := func(f float64) *float64 { return &f }
	for _, tt := range []struct {
		size         string
		price, onDem *float64
		spot         bool
	}{
		{"spot", ptr(0.4242), ptr(1.212), true},
		{"priced", ptr(0.5), ptr(1.212), true},
		{"own", ptr(0.7), ptr(2), true},
		{"unknown", nil, nil, false},
		{"steady", ptr(1.212), nil, false},
	} {
		t.Run(tt.size, func(t *testing.T) {
			s := idleSpec(cfg, tt.size)
			if !samePrice(s.PricePerHour, tt.price) || !samePrice(s.OnDemandPerHour, tt.onDem) || s.SpotPrice != tt.spot {
				t.Errorf("price %v, on-demand %v, spot %v; want %v, %v, %v",
					deref(s.PricePerHour), deref(s.OnDemandPerHour), s.SpotPrice, deref(tt.price), deref(tt.onDem), tt.spot)
			}
		})
	}
	if got := costText(&IdleJSON{CostPerHour: ptr(0.4242), CostSoFar: ptr(0.85), SpotPrice: true}); got != "$0.85 so far, $0.4242/h (spot, estimated)" {
		t.Errorf("costText = %q", got)
	}
}

func samePrice(a, b *float64) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
