package portal

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/spinbook/spinbook/internal/portal/client"
)

// TestClientContract drives this portal with the command line's own API
// client (package client, which `spinbook login` uses): the two sides of
// the /api/v1 contract agree on paths, bodies, streaming and errors.
func TestClientContract(t *testing.T) {
	tp := newTestPortal(t, nil)
	tp.servers.running["bob"] = ""
	srv := httptest.NewServer(tp.p)
	defer srv.Close()
	c := client.New(srv.URL, tp.makeToken(t, tp.signIn(t, "alice", alicePassword)), nil)
	ctx := t.Context()

	me, err := c.Me(ctx)
	if err != nil || me.User != "alice" || me.Admin {
		t.Fatalf("Me = %+v, %v", me, err)
	}
	var steps []string
	var up struct{ User, State string }
	if err := c.Start(ctx, "alice", "small", func(s string) { steps = append(steps, s) }, &up); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if up.User != "alice" || up.State != "running" || len(steps) != 2 {
		t.Errorf("Start: %+v after %q", up, steps)
	}
	var list []struct{ User string }
	if err := c.List(ctx, &list); err != nil || len(list) != 1 || list[0].User != "alice" {
		t.Errorf("List = %+v, %v; want alice's only", list, err)
	}
	var saved struct{ User string }
	if err := c.Save(ctx, "alice", "from the client", &saved); err != nil || saved.User != "alice" {
		t.Errorf("Save = %+v, %v", saved, err)
	}
	var ext struct{ User string }
	if err := c.Extend(ctx, "alice", 2*time.Hour, &ext); err != nil || ext.User != "alice" {
		t.Errorf("Extend = %+v, %v", ext, err)
	}
	var st struct{ State string }
	var ce *client.Error
	if err := c.Status(ctx, "bob", &st); !errors.As(err, &ce) || ce.Status != http.StatusNotFound {
		t.Errorf("Status of bob's server as alice: %v, want a 404 client.Error", err)
	}
	if err := c.Stop(ctx, "alice", false, false, func(string) {}, &st); err != nil || st.State != "absent" {
		t.Errorf("Stop = %+v, %v", st, err)
	}
	bad := client.New(srv.URL, "sbp_"+randomString(32), nil)
	if _, err := bad.Me(ctx); !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized {
		t.Errorf("Me with an unknown token: %v, want 401", err)
	}
	want := []string{"start alice small", `save alice "from the client"`, "extend alice 2h0m0s", "stop alice purge=false force=false"}
	if got := tp.servers.Calls(); len(got) != len(want) {
		t.Errorf("calls %q, want %q", got, want)
	}
}
