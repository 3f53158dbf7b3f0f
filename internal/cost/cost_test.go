package cost

import (
	"testing"
	"time"
)

func TestSoFar(t *testing.T) {
	tests := []struct {
		name  string
		price float64
		d     time.Duration
		want  float64
	}{
		{"nothing yet", 1.21, 0, 0},
		{"an hour", 1.21, time.Hour, 1.21},
		{"ninety minutes", 0.19, 90 * time.Minute, 0.29}, // 0.285 rounds up
		{"a weekend", 1.212, 60 * time.Hour, 72.72},
		{"clock skew is not negative", 1, -time.Minute, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SoFar(tt.price, tt.d); got != tt.want {
				t.Errorf("SoFar(%v, %v) = %v, want %v", tt.price, tt.d, got, tt.want)
			}
		})
	}
}

func TestAWSOnDemand(t *testing.T) {
	if p, ok := AWSOnDemand("g5.2xlarge"); !ok || p != 1.212 {
		t.Errorf("AWSOnDemand(g5.2xlarge) = %v, %v", p, ok)
	}
	if _, ok := AWSOnDemand("x9.imaginary"); ok {
		t.Error("an unknown type has a price")
	}
}

func TestAWSSpot(t *testing.T) {
	for _, tt := range []struct {
		onDemand, want float64
	}{
		{1.212, 0.4242}, // g5.2xlarge
		{0.192, 0.0672}, // m6i.xlarge
		{0, 0},
	} {
		if got := AWSSpot(tt.onDemand); got != tt.want {
			t.Errorf("AWSSpot(%v) = %v, want %v", tt.onDemand, got, tt.want)
		}
	}
}

func TestMonthly(t *testing.T) {
	tests := []struct {
		name  string
		price float64
		gib   int
		want  float64
	}{
		{"the default workspace at gp3's price", AWSGP3PerGiBMonth, 50, 4},
		{"the largest volume", AWSGP3PerGiBMonth, 16384, 1310.72},
		{"rounded to cents", 0.0952, 33, 3.14},
		{"nothing", AWSGP3PerGiBMonth, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Monthly(tt.price, tt.gib); got != tt.want {
				t.Errorf("Monthly(%v, %d) = %v, want %v", tt.price, tt.gib, got, tt.want)
			}
		})
	}
}
