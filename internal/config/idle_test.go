package config

import (
	"testing"
	"time"
)

func TestIdleFor(t *testing.T) {
	hermetic(t)
	c, err := Parse([]byte(`
idle: {stop_after: 90m, warn_before: 5m}
sizes:
  small: {price_per_hour: 0.19}
  gpu: {price_per_hour: 1.21, idle: {stop_after: 30m, max_age: 24h}}
  never: {idle: {stop_after: "off", warn_before: "off"}}
`), "spinbook.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, size string
		want       IdleTimers
		price      float64
		priced     bool
	}{
		{"no size: top level over defaults", "", IdleTimers{StopAfter: 90 * time.Minute, WarnBefore: 5 * time.Minute}, 0, false},
		{"a size without idle keys", "small", IdleTimers{StopAfter: 90 * time.Minute, WarnBefore: 5 * time.Minute}, 0.19, true},
		{"a size's keys win", "gpu", IdleTimers{StopAfter: 30 * time.Minute, MaxAge: 24 * time.Hour, WarnBefore: 5 * time.Minute}, 1.21, true},
		{"off", "never", IdleTimers{}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.IdleFor(tt.size); got != tt.want {
				t.Errorf("IdleFor(%q) = %+v, want %+v", tt.size, got, tt.want)
			}
			if p, ok := c.PriceFor(tt.size); p != tt.price || ok != tt.priced {
				t.Errorf("PriceFor(%q) = %v, %v; want %v, %v", tt.size, p, ok, tt.price, tt.priced)
			}
		})
	}
	if got, want := Default().IdleFor(""), (IdleTimers{StopAfter: 2 * time.Hour, WarnBefore: 10 * time.Minute}); got != want {
		t.Errorf("Default().IdleFor = %+v, want %+v", got, want)
	}
}
