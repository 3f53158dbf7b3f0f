// Package cost estimates what notebook servers cost: an hourly price per
// size (config sizes.NAME.price_per_hour, or for AWS instance types a
// dated table of on-demand prices) and the cost so far.
package cost

import (
	"math"
	"time"
)

// AWSPricesAsOf dates AWSOnDemand's table: the published on-demand prices
// of Linux instances in us-east-1 as they stood then. Other regions cost
// somewhat more; set sizes.NAME.price_per_hour for an exact figure.
const AWSPricesAsOf = "2025-06"

// awsOnDemand is USD per hour, Linux, on-demand, us-east-1.
var awsOnDemand = map[string]float64{
	"t3.medium":    0.0416,
	"t3.large":     0.0832,
	"t3.xlarge":    0.1664,
	"m6i.large":    0.096,
	"m6i.xlarge":   0.192,
	"m6i.2xlarge":  0.384,
	"m6i.4xlarge":  0.768,
	"m6i.8xlarge":  1.536,
	"r6i.large":    0.126,
	"r6i.xlarge":   0.252,
	"r6i.2xlarge":  0.504,
	"r6i.4xlarge":  1.008,
	"c6i.xlarge":   0.17,
	"c6i.2xlarge":  0.34,
	"c6i.4xlarge":  0.68,
	"g4dn.xlarge":  0.526,
	"g4dn.2xlarge": 0.752,
	"g4dn.4xlarge": 1.204,
	"g5.xlarge":    1.006,
	"g5.2xlarge":   1.212,
	"g5.4xlarge":   1.624,
	"g5.8xlarge":   2.448,
	"g5.12xlarge":  5.672,
	"p3.2xlarge":   3.06,
}

// AWSOnDemand returns the on-demand price in USD per hour of an EC2
// instance type (see AWSPricesAsOf); ok is false for a type the table
// does not know.
func AWSOnDemand(instanceType string) (price float64, ok bool) {
	price, ok = awsOnDemand[instanceType]
	return price, ok
}

// AWSSpotDiscount is how much less than on-demand a spot instance is
// taken to cost when the size gives no sizes.NAME.spot_price: 0.65, as
// AWS's Spot Instance Advisor shows savings of 60-70% over on-demand for
// most general-purpose and GPU types. Spot prices change by zone and
// hour; the figure is an estimate, not what AWS bills.
const AWSSpotDiscount = 0.65

// AWSSpot estimates the spot price in USD per hour of an instance whose
// on-demand price is onDemand (AWSSpotDiscount off, rounded to a tenth of
// a cent).
func AWSSpot(onDemand float64) float64 {
	return math.Round(onDemand*(1-AWSSpotDiscount)*10000) / 10000
}

// AWSGP3PerGiBMonth is the published price of gp3 EBS storage in us-east-1
// (see AWSPricesAsOf), in USD per GiB-month; the baseline 3,000 IOPS and
// 125 MB/s a workspace volume keeps are included. Other regions cost
// somewhat more: aws.workspace_price_per_gib_month sets another.
const AWSGP3PerGiBMonth = 0.08

// Monthly is what keeping gib GiB at perGiBMonth costs a month, in USD,
// rounded to cents.
func Monthly(perGiBMonth float64, gib int) float64 {
	return math.Round(perGiBMonth*float64(gib)*100) / 100
}

// SoFar is what running d at pricePerHour costs, in USD, rounded to cents.
func SoFar(pricePerHour float64, d time.Duration) float64 {
	if d < 0 {
		d = 0
	}
	return math.Round(pricePerHour*d.Hours()*100) / 100
}
