package aws

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
)

// tagRulePriority records, on an instance stack behind the shared load
// balancer, its listener rule's priority: the next `up` keeps it, and
// other users' `up`s steer clear of it.
const tagRulePriority = "spinbook.rule-priority"

// preferredPriority is user's own listener rule priority, from a hash of
// the name: the same on every machine and every `up`, so that a user's
// rule keeps its place, and spread over 1..50000, so that two users
// rarely prefer the same one; the last priority is the portal's.
func preferredPriority(user string) int {
	h := fnv.New32a()
	h.Write([]byte(user))
	return 1 + int(h.Sum32()%maxUserPriority)
}

// rulePriority is the priority of p's rule: the one `up` chose, else the
// user's preferred one (what `aws render` shows).
func (p InstanceParams) rulePriority() int {
	if p.RulePriority > 0 {
		return p.RulePriority
	}
	return preferredPriority(p.User)
}

// freePriority returns user's preferred priority, or the first one after
// it (wrapping at maxUserPriority) that taken does not hold; false if all
// are.
func freePriority(user string, taken map[int]string) (int, bool) {
	start := preferredPriority(user)
	for i := range maxUserPriority {
		pr := (start-1+i)%maxUserPriority + 1
		if other, ok := taken[pr]; !ok || other == user {
			return pr, true
		}
	}
	return 0, false
}

// rulePriority chooses the priority of user's rule on the shared
// listener. A listener refuses two rules of one priority, and a template
// cannot see the others, so `up` reads them from the tags of the site's
// instance stacks: user's own stack keeps the one it has; a new one takes
// its preferred priority or the next free. Two `up`s at the very same
// moment can still pick one priority: then the load balancer refuses the
// second rule (PriorityInUse), its stack fails with that reason, and
// running `up` again picks another.
func (a *AWS) rulePriority(ctx context.Context, user string) (int, error) {
	taken := map[int]string{}
	own := 0
	p := cloudformation.NewDescribeStacksPaginator(a.cf, &cloudformation.DescribeStacksInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("list stacks for a listener rule priority: %w", err)
		}
		for i := range page.Stacks {
			st := &page.Stacks[i]
			if tag(st, tagManaged) != managedBy || tag(st, tagSite) != a.site() || tag(st, tagRole) != "instance" ||
				st.StackStatus == types.StackStatusDeleteComplete {
				continue
			}
			pr, err := strconv.Atoi(tag(st, tagRulePriority))
			if err != nil || pr < 1 || pr > maxUserPriority {
				continue
			}
			if u := tag(st, tagUser); u == user {
				own = pr
			} else {
				taken[pr] = u
			}
		}
	}
	if _, clash := taken[own]; own > 0 && !clash {
		return own, nil
	}
	pr, ok := freePriority(user, taken)
	if !ok {
		return 0, fmt.Errorf("the shared load balancer's listener has no free rule priority (%d servers): take servers down first", len(taken))
	}
	return pr, nil
}

// dnsMissing explains a server URL whose name does not resolve, behind
// the shared load balancer: the wildcard record is missing. "" if err is
// something else.
func (a *AWS) dnsMissing(err error, host string) string {
	var dnsErr *net.DNSError
	if !a.cfg.AWS.SharedLoadBalancer || !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		return ""
	}
	return fmt.Sprintf("the stack is up, but %s does not resolve: point a wildcard DNS record *.%s at the site's load balancer (`spinbook site up` prints its name), then run `spinbook status`", host, a.cfg.AWS.Domain)
}
