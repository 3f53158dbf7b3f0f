package backend

import (
	"context"
	"fmt"
	"time"
)

// SpotWatch is how the agent of a spot server watches the instance
// metadata service (IMDSv2).
type SpotWatch struct {
	// Endpoint is the metadata service's base URL; "" is
	// http://169.254.169.254. On aws the agent, one network hop from the
	// instance inside its container, reaches it through a relay on the
	// instance that answers only the spot paths (agent.ServeIMDSRelay);
	// tests point it at ec2-metadata-mock.
	Endpoint string `json:"endpoint,omitempty"`
	// Interval is the time between polls; 0 is 5s, as AWS advises.
	Interval time.Duration `json:"interval,omitempty"`
	// TokenTTL is the life of an IMDSv2 session token; 0 is 6h.
	TokenTTL time.Duration `json:"token_ttl,omitempty"`
}

// StopSpotReclaimed is StopRecord.Reason for a spot interruption.
const StopSpotReclaimed = "spot-reclaimed"

// StopRecord is what the agent leaves where it outlives the server (the
// model store) when something outside spinbook takes the server away — a
// spot interruption — so that `spinbook status` can say, after the
// instance is gone, what happened and where the work went.
type StopRecord struct {
	User   string `json:"user"`
	Reason string `json:"reason"` // StopSpotReclaimed
	// NoticeAt is when the agent saw the notice; TakenAt when AWS said it
	// takes the instance (zero when it did not say); Action what it does
	// then (terminate, stop, hibernate).
	NoticeAt time.Time `json:"notice_at"`
	TakenAt  time.Time `json:"taken_at,omitzero"`
	Action   string    `json:"action,omitempty"`
	// Repo is false when no repo is configured: there was nothing to save.
	Repo bool `json:"repo"`
	// Saved: every commit is off the server, pushed to Branch or in the
	// stored Bundle. Head is the commit saved. Detail says why the work is
	// not saved, when it is not.
	Saved  bool   `json:"saved"`
	Head   string `json:"head,omitempty"`
	Branch string `json:"branch,omitempty"`
	Bundle string `json:"bundle,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// StopRecords finds the newest StopRecord of a user's server where the
// agent left it (the command line reads the model store); nil and no
// error when there is none.
type StopRecords func(ctx context.Context, user string) (*StopRecord, error)

// Summary is the record as `spinbook status` says it, such as "stopped:
// spot capacity reclaimed at 2026-12-06 04:30:00 UTC; work saved (branch
// main)".
func (r StopRecord) Summary() string {
	at := r.TakenAt
	if at.IsZero() {
		at = r.NoticeAt
	}
	s := "stopped: spot capacity reclaimed at " + at.UTC().Format("2006-01-02 15:04:05 MST")
	switch {
	case !r.Repo:
		return s + "; no repo is configured, so nothing was saved"
	case r.Saved && r.Branch != "":
		return s + fmt.Sprintf("; work saved (branch %s)", r.Branch)
	case r.Saved && r.Bundle != "":
		return s + fmt.Sprintf("; work saved (git bundle %s: the remote could not be reached in time)", r.Bundle)
	case r.Saved:
		return s + "; work saved (nothing new since the last push)"
	}
	return s + "; work NOT saved off the server: " + r.Detail
}
