package aws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/config"
)

var (
	_ backend.Backend      = (*AWS)(nil)
	_ backend.SiteManager  = (*AWS)(nil)
	_ backend.Patient      = (*AWS)(nil)
	_ backend.Purger       = (*AWS)(nil)
	_ backend.Snapshotter  = (*AWS)(nil)
	_ backend.VolumeLister = (*AWS)(nil)
)

// Tags on both stacks (CloudFormation passes them on to every resource
// that takes tags).
const (
	tagManaged      = backend.LabelManaged
	tagSite         = "spinbook.site"
	tagUser         = backend.LabelUser
	tagRole         = "spinbook.role" // "site", "instance" or "workspace"
	tagSize         = "spinbook.size"
	tagInstanceType = "spinbook.instance-type"
	tagAccessDigest = "spinbook.access-digest" // Spec.AccessDigest: a hash of hashes
	tagDeployDigest = "spinbook.deploy-digest" // what the stack runs, tokens left out
	managedBy       = "spinbook"
)

// AWS is the aws backend.
type AWS struct {
	cfg       *config.Config
	log       *slog.Logger
	agentPath string
	sdk       awssdk.Config
	cf        *cloudformation.Client
	sm        *secretsmanager.Client
	s3        *s3.Client
	logs      *cloudwatchlogs.Client
	ec2       *ec2.Client
	http      *http.Client
	// poll is how often stack progress is asked for.
	poll time.Duration
	// stops reads the record a spot server's agent leaves when AWS takes
	// its instance; nil: no records are read.
	stops backend.StopRecords
}

// Options tune New for tests; the zero value is what the command line uses.
type Options struct {
	// AgentPath is the static linux agent binary instances fetch (""
	// = spinbook-agent beside this executable: backend.AgentBinary).
	AgentPath string
	// SDK replaces the configuration the AWS SDK's default chain gives
	// (a stand-in's endpoint and static credentials).
	SDK *awssdk.Config
	// Poll is how often stack progress is asked for; default 5s.
	Poll time.Duration
	// Stops reads the stop records of spot servers whose instance AWS
	// took back (the command line: from the model store); nil: none.
	Stops backend.StopRecords
	// HTTP asks the agents through their load balancers (nil: a client
	// with a 10s timeout; the tests' reaches the instance stand-in's).
	HTTP *http.Client
}

// ErrNoRegion and ErrNoCredentials say what is missing before anything
// reaches AWS.
var (
	ErrNoRegion      = errors.New("no AWS region")
	ErrNoCredentials = errors.New("no AWS credentials")
)

// New returns the aws backend for cfg. Credentials and region come from the
// AWS SDK's default chain (AWS_* variables, ~/.aws with aws.profile,
// SSO, an instance role), aws.region overriding the region. A missing
// region is an error now; credentials are checked by each operation.
func New(cfg *config.Config, log *slog.Logger, opts Options) (*AWS, error) {
	var sdk awssdk.Config
	if opts.SDK != nil {
		sdk = *opts.SDK
		if cfg.AWS.Region != "" {
			sdk.Region = cfg.AWS.Region
		}
	} else {
		var lo []func(*awsconfig.LoadOptions) error
		if cfg.AWS.Profile != "" {
			lo = append(lo, awsconfig.WithSharedConfigProfile(cfg.AWS.Profile))
		}
		if cfg.AWS.Region != "" {
			lo = append(lo, awsconfig.WithRegion(cfg.AWS.Region))
		}
		var err error
		sdk, err = awsconfig.LoadDefaultConfig(context.Background(), lo...)
		if err != nil {
			return nil, fmt.Errorf("load the AWS configuration: %w (check ~/.aws/config and aws.profile)", err)
		}
	}
	if sdk.Region == "" {
		return nil, fmt.Errorf("%w: set aws.region in the config, AWS_REGION, or a region in the profile (~/.aws/config)", ErrNoRegion)
	}
	agentPath, err := backend.AgentBinary(opts.AgentPath)
	if err != nil {
		return nil, err
	}
	opts.AgentPath = agentPath
	if opts.Poll == 0 {
		opts.Poll = 5 * time.Second
	}
	if opts.HTTP == nil {
		opts.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	a := &AWS{
		cfg:       cfg,
		log:       log,
		agentPath: opts.AgentPath,
		sdk:       sdk,
		cf:        cloudformation.NewFromConfig(sdk),
		sm:        secretsmanager.NewFromConfig(sdk),
		s3: s3.NewFromConfig(sdk, func(o *s3.Options) {
			o.UsePathStyle = sdk.BaseEndpoint != nil
			o.RequestChecksumCalculation = awssdk.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = awssdk.ResponseChecksumValidationWhenRequired
		}),
		logs:  cloudwatchlogs.NewFromConfig(sdk),
		ec2:   ec2.NewFromConfig(sdk),
		http:  opts.HTTP,
		poll:  opts.Poll,
		stops: opts.Stops,
	}
	return a, nil
}

// Name implements backend.Backend.
func (a *AWS) Name() string { return "aws" }

// Timeout implements backend.Patient: stacks take minutes (a NAT gateway,
// a load balancer, an instance that boots and pulls a large image).
func (a *AWS) Timeout(command string) time.Duration {
	switch command {
	case "site up", "site down":
		return 30 * time.Minute
	default:
		return 25 * time.Minute
	}
}

// checkCredentials fails early, and clearly, when the SDK finds none.
func (a *AWS) checkCredentials(ctx context.Context) error {
	if a.sdk.Credentials == nil {
		return fmt.Errorf("%w: run `aws configure` (or `aws sso login`), set AWS_PROFILE or aws.profile, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", ErrNoCredentials)
	}
	if _, err := a.sdk.Credentials.Retrieve(ctx); err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("%w: %v; run `aws configure` (or `aws sso login`), set AWS_PROFILE or aws.profile, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", ErrNoCredentials, err)
	}
	return nil
}

func (a *AWS) site() string { return a.cfg.AWS.Site }

func baseTags(site string) map[string]string {
	return map[string]string{tagManaged: managedBy, tagSite: site}
}
