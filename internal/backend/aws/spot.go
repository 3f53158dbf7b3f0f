package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	cfn "github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/ec2"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/config"
)

// Spot servers (sizes.NAME.spot). The instance is a one-time spot request
// made by the launch template's market options, at most the on-demand
// price (no MaxPrice: AWS's advice), terminated when AWS takes it back.
// With spot: prefer, an `up` whose stack fails for want of spot capacity
// is deployed again on-demand, and says so; the stack then carries
// tagMarket "on-demand" and stays on-demand until `down` (moving it back
// to spot would replace the instance under a running server).

// tagMarket says how a stack's instance is bought: "spot" or "on-demand".
const tagMarket = "spinbook.market"

// spot says whether p's instance runs on spot capacity.
func (p InstanceParams) spot() bool {
	return p.Size.SpotMode != config.SpotOff && !p.OnDemand
}

// market is p's tagMarket value.
func (p InstanceParams) market() string {
	if p.spot() {
		return "spot"
	}
	return "on-demand"
}

// marketOptions are the launch template's market options for p: spot, or
// nil for on-demand.
func marketOptions(p InstanceParams) *ec2.LaunchTemplate_InstanceMarketOptions {
	if !p.spot() {
		return nil
	}
	return &ec2.LaunchTemplate_InstanceMarketOptions{
		MarketType: cfn.String("spot"),
		SpotOptions: &ec2.LaunchTemplate_SpotOptions{
			SpotInstanceType:             cfn.String("one-time"),
			InstanceInterruptionBehavior: cfn.String("terminate"),
		},
	}
}

// spotCapacityCodes are what EC2 says, in a failed Instance's status
// reason, when it cannot give spot capacity now: then on-demand may still
// be had. Each is an error code of RunInstances (EC2 API reference,
// "Error codes") or a spot request status (Spot Instance request
// statuses).
var spotCapacityCodes = []string{
	"InsufficientInstanceCapacity",
	"SpotMaxPriceTooLow",
	"MaxSpotInstanceCountExceeded",
	"capacity-not-available",
	"capacity-oversubscribed",
	"price-too-low",
	"There is no Spot capacity available",
}

// isSpotCapacity says whether err is a stack that failed for want of spot
// capacity.
func isSpotCapacity(err error) bool {
	var se *StackError
	if !errors.As(err, &se) {
		return false
	}
	for _, code := range spotCapacityCodes {
		if strings.Contains(se.Reason, code) {
			return true
		}
	}
	return false
}

// noSpotCapacity is the error of a `spot: true` size that AWS has no spot
// capacity for, saying what to do.
func noSpotCapacity(p InstanceParams, err error) error {
	return fmt.Errorf("AWS has no spot capacity for %s (size %s) now: try again later, another size or instance type, "+
		"or set sizes.%s.spot: prefer to fall back to on-demand: %w", p.instanceType(), p.SizeName, p.SizeName, err)
}

// spotReason is the reason of the stack error err, for the message of a
// fall back to on-demand.
func spotReason(err error) string {
	var se *StackError
	if errors.As(err, &se) && se.Reason != "" {
		return se.Reason
	}
	return err.Error()
}

// imdsRelayAddr is where the instance's metadata relay listens for the
// agent in its container: the Docker bridge's address on the instance.
// IMDSv2 answers a token request only one network hop away (the launch
// template's hop limit of 1, so that containers cannot take the instance
// role), and the container is one hop further; the relay, on the
// instance, answers the spot paths and nothing else (agent.IMDSRelay).
const imdsRelayAddr = "172.17.0.1:8179"

// spotWatch is what the agent of p watches: the relay, on a spot
// instance; nil on-demand.
func spotWatch(p InstanceParams) *backend.SpotWatch {
	if !p.spot() {
		return nil
	}
	return &backend.SpotWatch{Endpoint: "http://" + imdsRelayAddr}
}

// reclaimed returns the record of AWS taking stack st's spot instance
// back since the stack last changed; nil when there is none (or it
// cannot be read: then the stack is taken to run).
func (a *AWS) reclaimed(ctx context.Context, st *types.Stack) *backend.StopRecord {
	if a.stops == nil || tag(st, tagMarket) != "spot" {
		return nil
	}
	rec, err := a.stops(ctx, tag(st, tagUser))
	if err != nil {
		a.log.Warn("the stop records cannot be read", "err", err)
		return nil
	}
	if rec == nil {
		return nil
	}
	since := awssdk.ToTime(st.CreationTime)
	if st.LastUpdatedTime != nil {
		since = *st.LastUpdatedTime
	}
	if rec.NoticeAt.Before(since) {
		return nil // an earlier instance's
	}
	return rec
}

// relayUserData is the end of a spot instance's boot script: the metadata
// relay as a service, from the agent binary the script fetched (no shell
// ${}: the script is a Fn::Sub template). "" on-demand.
func relayUserData(p InstanceParams) string {
	if !p.spot() {
		return ""
	}
	return `# spinbook: the spot watch's relay to the instance metadata service, which
# answers the agent's container (a hop too far for IMDSv2) the spot paths only.
cat >/etc/systemd/system/spinbook-imds-relay.service <<'UNIT'
[Unit]
Description=spinbook: instance metadata relay for the spot watch
After=docker.service
[Service]
ExecStart=` + hostAgentDir + `/spinbook imds-relay --listen ` + imdsRelayAddr + `
Restart=always
RestartSec=2
DynamicUser=yes
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now spinbook-imds-relay.service
`
}
