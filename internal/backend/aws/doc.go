// Package aws runs each user's server on AWS, as the seed did, with
// CloudFormation stacks generated in Go (goformation):
//
//   - the site stack spinbook-SITE (`spinbook site up`, left up): the
//     network unless aws.vpc_id names one (VPC, public and private subnets
//     in two zones, an internet gateway, a NAT gateway whose Elastic IP is
//     the fixed egress address), the security groups, an ECS cluster with
//     no instances, the log group, the roles and the bucket the agent
//     binary is fetched from;
//   - the instance stack spinbook-SITE-USER (`spinbook up`, removed by
//     `spinbook down`): an internet-facing load balancer, one EC2 instance
//     from the ECS-optimized AMI that joins the cluster, and an ECS service
//     running the configured Jupyter image, unmodified, with the agent
//     bind-mounted from the instance as its entrypoint, with its own task
//     role; CloudFormation manages it with the site's service role
//     (StackRole), and the agent deletes it itself after an idle stop
//     (roles.go, ReleaseCommand, DeleteOwnStack).
//
// How the spec reaches the agent: the command line stores it (password
// hash, tokens, passwords) as one Secrets Manager secret,
// spinbook/SITE/USER/agent-spec; the task definition names that secret
// and version in `secrets: valueFrom`, so ECS, with the execution role no
// container can assume, injects it as the variable SPINBOOK_AGENT_SPEC_JSON.
// The agent is the container's PID 1 (no docker-init, whose environment
// would keep the variable): it moves the spec into a memfd and
// re-executes itself without the variable (backend.ExecWithSpecFD), then
// runs the agent proper as a child and reaps orphans (agent.RunInit), so
// that no process's /proc/PID/environ holds the spec. No secret is ever a stack
// parameter, a template value, user data or plain task environment.
//
// The stacks are the truth about what runs: they carry the tags
// managed-by=spinbook, spinbook.site and spinbook.user.
package aws
