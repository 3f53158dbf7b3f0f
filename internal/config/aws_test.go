package config

import (
	"strings"
	"testing"
)

// TestAWSWorkspaceSize: aws.workspace_size and sizes.NAME.storage become
// the workspace volume's GiB, or a problem at their key that says what an
// EBS volume takes.
func TestAWSWorkspaceSize(t *testing.T) {
	hermetic(t)
	const head = "backend: aws\naccess: {allow: [203.0.113.0/24]}\naws: {region: us-east-1, certificate_arn: \"arn:aws:acm:us-east-1:123456789012:certificate/abc\""
	cases := []struct {
		name, aws, storage string
		size               string // the size asked for ("" none)
		want               int
		price              float64 // aws.workspace_price_per_gib_month parsed
		problem            string  // in the error, "" for none
	}{
		{name: "default", want: 50},
		{name: "given", aws: "200GiB", want: 200},
		{name: "kubernetes notation", aws: "100Gi", want: 100},
		{name: "the size's storage wins", aws: "200GiB", storage: "500GiB", size: "big", want: 500},
		{name: "a size without storage takes the site's", aws: "80GiB", size: "plain", want: 80},
		{name: "largest", aws: "16TiB", want: 16384},
		{name: "smallest", aws: "1GiB", want: 1},
		{name: "part of a GiB", aws: "1.5GiB", problem: "aws.workspace_size: \"1.5GiB\": an EBS volume is a whole number of GiB"},
		{name: "decimal units", aws: "100G", problem: "aws.workspace_size: \"100G\": an EBS volume is a whole number of GiB"},
		{name: "too large", aws: "17TiB", problem: "aws.workspace_size: \"17TiB\": an EBS volume is between 1GiB and 16TiB"},
		{name: "no unit", aws: "50", problem: "aws.workspace_size: \"50\": want a size such as 10GiB"},
		{name: "a price", aws: "50GiB, workspace_price_per_gib_month: 0.0952", want: 50, price: 0.0952},
		{name: "not a price", aws: "50GiB, workspace_price_per_gib_month: cheap", problem: "aws.workspace_price_per_gib_month: \"cheap\" is not a price"},
		{name: "size's storage too small", storage: "512MiB", size: "big", problem: "sizes.big.storage: \"512MiB\": with backend aws, the workspace volume's size: an EBS volume is a whole number of GiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			y := head
			if c.aws != "" {
				y += ", workspace_size: " + c.aws
			}
			y += "}\nsizes:\n  plain: {instance_type: m6i.large}\n"
			if c.storage != "" {
				y += "  big: {instance_type: m6i.large, storage: " + c.storage + "}\n"
			}
			cfg, err := Parse([]byte(y), "spinbook.yaml")
			if c.problem != "" {
				if err == nil || !strings.Contains(err.Error(), c.problem) {
					t.Fatalf("error %v, want one saying %q", err, c.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.WorkspaceGiB(c.size); got != c.want {
				t.Errorf("WorkspaceGiB(%q) = %d, want %d", c.size, got, c.want)
			}
			if cfg.AWS.WorkspacePricePerGiB != c.price {
				t.Errorf("the price is %v, want %v (0: the default)", cfg.AWS.WorkspacePricePerGiB, c.price)
			}
		})
	}
}
