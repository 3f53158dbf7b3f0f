package portal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spinbook/spinbook/internal/config"
)

// An actionError is an action refused before or while it ran, with the
// HTTP status it answers and a message that says what to do.
type actionError struct {
	Code int
	Msg  string
}

func (e *actionError) Error() string { return e.Msg }

func refuse(code int, format string, args ...any) *actionError {
	return &actionError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// actionRequest is what an action may carry, from the API's JSON body or
// a page's form.
type actionRequest struct {
	Size    string `json:"size"`
	Purge   bool   `json:"purge"`
	Force   bool   `json:"force"`
	Message string `json:"message"`
	For     string `json:"for"`
}

// target checks that user is a valid name whose server id may see and act
// on: a server a person may not see is not found (404), whatever exists.
func target(id who, user string) *actionError {
	if config.ValidateUser(user) != nil || !id.mayAct(user) {
		return refuse(http.StatusNotFound, "no server %q that you can see: you can act on your own server only (admins: on anyone's)", truncate(user, 40))
	}
	return nil
}

// validAction is action if it is one the portal knows, else "?": the audit
// log keeps no text a caller made up.
func validAction(action string) string {
	switch action {
	case "start", "stop", "save", "extend", "open":
		return action
	}
	return "?"
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// check validates req for action before anything starts.
func (p *Portal) check(action string, req *actionRequest) *actionError {
	switch action {
	case "start":
		if req.Size == "" {
			return nil
		}
		if _, err := p.cfg.LookupSize(req.Size); err != nil {
			return refuse(http.StatusBadRequest, "%v", err)
		}
	case "stop":
	case "save":
		if len(req.Message) > 1000 || strings.ContainsRune(req.Message, 0) {
			return refuse(http.StatusBadRequest, "message: at most 1000 characters, no NUL")
		}
	case "extend":
		if req.For == "" {
			req.For = "1h"
		}
		d, err := time.ParseDuration(req.For)
		if err != nil || d < time.Second || d > 720*time.Hour {
			return refuse(http.StatusBadRequest, "for %q: give a duration between 1s and 720h, such as 30m or 2h", truncate(req.For, 40))
		}
	default:
		return refuse(http.StatusNotFound, "no action %q: start, stop, save, extend (and open, on the page)", truncate(action, 20))
	}
	return nil
}

// startOrStop begins a start or stop of user's server as an operation.
func (p *Portal) startOrStop(r *http.Request, id who, user, action string, req actionRequest) (*operation, *actionError) {
	if action == "start" && req.Size != "" && id.User == user {
		// The size picker starts at the size the person chose last.
		if err := p.store.setSetting(r.Context(), user, "size", req.Size); err != nil {
			p.log.Error("remember size", "err", err)
		}
	}
	run := func(ctx context.Context, progress func(string)) (json.RawMessage, error) {
		if action == "start" {
			res, err := p.servers.Start(ctx, user, req.Size, progress)
			if err == nil {
				price, ok := p.cfg.PriceFor(req.Size)
				var pp *float64
				if ok {
					pp = &price
				}
				_ = p.store.runStarted(ctx, user, req.Size, pp, p.now())
			}
			return res, err
		}
		res, err := p.servers.Stop(ctx, user, req.Purge, req.Force, progress)
		if err == nil {
			_ = p.store.runStopped(ctx, user, p.now())
		}
		return res, err
	}
	o, err := p.begin(r, id, user, action, run)
	if errors.Is(err, errBusy) {
		return o, refuse(http.StatusConflict, "%s's server is busy: a %s is under way; wait for it to finish", user, o.Action)
	}
	return o, nil
}

// saveOrExtend runs a save or an extend, which are quick, in the request.
func (p *Portal) saveOrExtend(r *http.Request, id who, user, action string, req actionRequest) (json.RawMessage, error) {
	var res json.RawMessage
	var err error
	if action == "save" {
		res, err = p.servers.Save(r.Context(), user, req.Message)
	} else {
		d, _ := time.ParseDuration(req.For) // checked
		res, err = p.servers.Extend(r.Context(), user, d)
	}
	result := "ok"
	if err != nil {
		result = err.Error()
	}
	p.record(r, id, action, user, result)
	return res, err
}

// errorCode is the HTTP status for an error of Servers.
func errorCode(err error) int {
	var ae *actionError
	switch {
	case errors.As(err, &ae):
		return ae.Code
	case errors.Is(err, ErrRefused):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}
