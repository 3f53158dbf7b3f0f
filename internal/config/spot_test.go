package config

import "testing"

// TestSizeSpot: sizes.NAME.spot in each form YAML allows, and spot_price.
func TestSizeSpot(t *testing.T) {
	hermetic(t)
	c, err := Load("testdata/valid/aws-spot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		size  string
		mode  SpotMode
		price float64
	}{
		{"cheap", SpotOn, 0},
		{"gpu", SpotPrefer, 0.45},
		{"steady", SpotOff, 0},
	} {
		t.Run(tt.size, func(t *testing.T) {
			s := c.Sizes[tt.size]
			if s.SpotMode != tt.mode || s.SpotPriceUSD != tt.price {
				t.Errorf("spot %v at %v, want %v at %v", s.SpotMode, s.SpotPriceUSD, tt.mode, tt.price)
			}
		})
	}
	for _, src := range []string{"spot: true", "spot: \"true\"", "spot: True"} {
		t.Run(src, func(t *testing.T) {
			c, err := Parse([]byte("backend: aws\naccess: {allow: [203.0.113.0/24]}\naws: {certificate_arn: arn:aws:acm:us-east-1:123456789012:certificate/x}\n"+
				"sizes:\n  s: {instance_type: m6i.large, "+src+"}\n"), "spinbook.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Sizes["s"].SpotMode; got != SpotOn {
				t.Errorf("%s gives %v, want true", src, got)
			}
		})
	}
}
