package aws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"

	"github.com/spinbook/spinbook/internal/backend"
)

var _ backend.Logger = (*AWS)(nil)

// logGroup is the site's log group; each task of user writes the stream
// USER/notebook/TASK-ID (awslogs-stream-prefix).
func logGroup(site string) string { return "/spinbook/" + site }

// Logs implements backend.Logger: the agent's and Jupyter's output from
// CloudWatch Logs, every task of user's, oldest first; with follow, new
// lines as they arrive until ctx is done.
func (a *AWS) Logs(ctx context.Context, user string, follow bool, w io.Writer) error {
	if err := a.checkCredentials(ctx); err != nil {
		return err
	}
	group, prefix := logGroup(a.site()), user+"/"
	var start int64           // ms since the epoch; the next read starts here
	seen := map[string]bool{} // events at start, already written
	for n := 0; ; n++ {
		in := &cloudwatchlogs.FilterLogEventsInput{LogGroupName: &group, LogStreamNamePrefix: &prefix}
		if start > 0 {
			in.StartTime = awssdk.Int64(start)
		}
		p := cloudwatchlogs.NewFilterLogEventsPaginator(a.logs, in)
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			var nf *cwtypes.ResourceNotFoundException
			switch {
			case errors.As(err, &nf):
				return fmt.Errorf("no log group %s: run `spinbook site up`", group)
			case err != nil && ctx.Err() != nil:
				return nil
			case err != nil:
				return fmt.Errorf("read log group %s: %w", group, err)
			}
			for _, ev := range page.Events {
				id := awssdk.ToString(ev.EventId)
				if seen[id] {
					continue
				}
				if ts := awssdk.ToInt64(ev.Timestamp); ts > start {
					start, seen = ts, map[string]bool{}
				}
				seen[id] = true
				msg := awssdk.ToString(ev.Message)
				if !strings.HasSuffix(msg, "\n") {
					msg += "\n"
				}
				if _, err := io.WriteString(w, msg); err != nil {
					return err
				}
			}
		}
		if !follow {
			return nil
		}
		if err := a.sleep(ctx, n); err != nil {
			return nil
		}
	}
}
