package portal

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"
)

// An operation is a start or stop of one user's server, run by the portal
// apart from the request that asked for it: a browser that goes away does
// not leave a server half up. Its progress can be watched (SSE) while it
// runs and for a while after.
type operation struct {
	User   string
	Action string // "start" or "stop"
	Began  time.Time

	mu      sync.Mutex
	events  []string
	done    bool
	result  json.RawMessage
	err     error
	changed chan struct{} // closed at each change, then replaced
}

// operationTimeout bounds a start or stop (aws stacks take minutes).
const operationTimeout = 30 * time.Minute

func (o *operation) progress(msg string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, msg)
	close(o.changed)
	o.changed = make(chan struct{})
}

func (o *operation) finish(result json.RawMessage, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.done, o.result, o.err = true, result, err
	close(o.changed)
	o.changed = make(chan struct{})
}

// snapshot returns the events from index from on, whether it is done, and
// a channel closed at the next change.
func (o *operation) snapshot(from int) ([]string, bool, json.RawMessage, error, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var ev []string
	if from < len(o.events) {
		ev = append(ev, o.events[from:]...)
	}
	return ev, o.done, o.result, o.err, o.changed
}

// errBusy: an operation on that server is running already.
var errBusy = errors.New("busy")

// begin starts action on user's server unless one runs; run does the work.
// by is who asked, for the audit log.
func (p *Portal) begin(r *http.Request, by who, user, action string, run func(ctx context.Context, progress func(string)) (json.RawMessage, error)) (*operation, error) {
	p.opsMu.Lock()
	if o := p.ops[user]; o != nil {
		if _, done, _, _, _ := o.snapshot(0); !done {
			p.opsMu.Unlock()
			return o, errBusy
		}
	}
	o := &operation{User: user, Action: action, Began: p.now(), changed: make(chan struct{})}
	p.ops[user] = o
	p.opsMu.Unlock()

	client := p.clientIP(r)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), operationTimeout)
	go func() {
		defer cancel()
		res, err := run(ctx, o.progress)
		result := "ok"
		if err != nil {
			result = err.Error()
		}
		p.audit(context.WithoutCancel(ctx), by, action, user, result, client)
		o.finish(res, err)
	}()
	return o, nil
}

// operation returns user's current or last operation; nil for none.
func (p *Portal) operation(user string) *operation {
	p.opsMu.Lock()
	defer p.opsMu.Unlock()
	return p.ops[user]
}

// wait waits until o is done or ctx ends.
func (o *operation) wait(ctx context.Context) (json.RawMessage, error, bool) {
	for {
		_, done, res, err, changed := o.snapshot(0)
		if done {
			return res, err, true
		}
		select {
		case <-ctx.Done():
			return nil, nil, false
		case <-changed:
		}
	}
}

// record writes an action of a request to the audit log.
func (p *Portal) record(r *http.Request, by who, action, target, result string) {
	p.audit(r.Context(), by, action, target, result, p.clientIP(r))
}

func (p *Portal) audit(ctx context.Context, by who, action, target, result, client string) {
	p.metrics.action(action, result)
	if err := p.store.audit(ctx, auditEntry{At: p.now(), User: by.User, Action: action, Target: target, Result: result, Client: client}); err != nil {
		p.log.Error("audit log", "err", err)
	}
}
