package cli

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/portal/client"
	"github.com/spinbook/spinbook/internal/ui"
)

func newStatus(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show whether your server runs, and where",
		Long: `Show the user's server: its state (running, stopped, failed or absent),
whether Jupyter answers, its URL and health URL, its workspace and uptime.
For a running server, its agent adds its size, how long it has been idle,
when it stops itself (idle.stop_after, idle.max_age; a warning once that is
near: postpone it with ` + "`spinbook extend`" + `) and the estimated cost.
A server whose stop is due but whose work could not be saved off it stays
up: status says why in a line "stop blocked: REASON" (--json:
"stop_blocked"), and the agent tries the save again by itself.

On aws, the workspace line names its EBS volume, size, zone and estimated
monthly cost, also when the server is down and the workspace kept (--json:
"workspace_volume").

It also lists the secrets the config names (such as warehouse.password) and
whether each resolves here and now, as the next up would need; never a value.`,
		Example: `  spinbook status
  spinbook status --user alice --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ok, err := e.viaPortal(func(pc *client.Client) error { return e.statusViaPortal(cmd.Context(), pc) }); ok || err != nil {
				return err
			}
			cfg, user, be, err := e.openServer()
			if err != nil {
				return err
			}
			srv, err := be.Status(cmd.Context(), user)
			if err != nil {
				return fmt.Errorf("status: %w", err)
			}
			secrets := checkSecrets(cmd.Context(), cfg)
			idle := idleOf(cmd.Context(), srv)
			return e.printStatus(serverJSON{Server: srv, Secrets: secrets, IdleJSON: idle}, "")
		},
	}
}

// printStatus prints one server as `status` does; via is the portal's URL
// when the answer came through one.
func (e *env) printStatus(sj serverJSON, via string) error {
	if e.json {
		return ui.JSON(e.stdout, sj)
	}
	srv := sj.Server
	state := string(srv.State)
	if srv.State == backend.Running && srv.Ready {
		state += " (ready)"
	} else if srv.State == backend.Running {
		state += " (Jupyter not answering yet)"
	}
	rows := [][]string{{"user:", srv.User}}
	if via != "" {
		rows = append(rows, []string{"portal:", via + " (logged in; --config FILE uses a backend directly)"})
	}
	rows = append(rows, []string{"backend:", srv.Backend}, []string{"state:", state})
	if srv.State == backend.Absent && srv.Workspace != "" {
		// A workspace kept without its server (aws).
		rows = append(rows, []string{"workspace:", srv.Workspace})
	}
	if srv.State != backend.Absent {
		rows = append(rows, []string{"url:", srv.URL}, []string{"health:", srv.HealthURL},
			[]string{"workspace:", srv.Workspace})
		if srv.TLSFingerprint != "" {
			rows = append(rows, []string{"tls:", "SHA-256 " + srv.TLSFingerprint})
		}
		if !srv.StartedAt.IsZero() {
			rows = append(rows, []string{"started:", srv.StartedAt.Local().Format(time.DateTime) +
				" (" + ui.Duration(time.Since(srv.StartedAt)) + " ago)"})
		}
		rows = append(rows, idleRows(sj.IdleJSON)...)
	}
	if srv.Detail != "" {
		rows = append(rows, []string{"note:", srv.Detail})
	}
	for i, sec := range sj.Secrets {
		label := ""
		if i == 0 {
			label = "secrets:"
		}
		rows = append(rows, []string{label, sec.describe()})
	}
	for _, r := range rows {
		fmt.Fprintf(e.stdout, "%-11s %s\n", r[0], r[1])
	}
	return nil
}

func newLs(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List every server of this backend",
		Long: `List every server of this backend: state, uptime, size, idle time, when it
stops itself and the estimated cost. A server whose stop is due but whose
work could not be saved off it shows "(stop blocked)" in its state, and a
note under the table says why (--json: "stop_blocked"). On aws, notes under
the table also name each workspace volume, its size, zone and estimated
monthly cost, those kept with no server included (--json:
"workspace_volume" of each server).`,
		Example: `  spinbook ls
  spinbook ls --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ok, err := e.viaPortal(func(pc *client.Client) error { return e.lsViaPortal(cmd.Context(), pc) }); ok || err != nil {
				return err
			}
			cfg, err := e.loadConfig()
			if err != nil {
				return err
			}
			be, err := openBackend(cfg, e.logger())
			if err != nil {
				return err
			}
			servers, err := be.List(cmd.Context())
			if err != nil {
				return fmt.Errorf("ls: %w", err)
			}
			idles := idleOfAll(cmd.Context(), be, servers)
			out := make([]serverJSON, 0, len(servers))
			for i, srv := range servers {
				out = append(out, serverJSON{Server: srv, IdleJSON: idles[i]})
			}
			return e.printList(out, volumeNotes(cmd.Context(), be, servers))
		},
	}
}

// volumeNotes are ls's lines under the table about workspace volumes that
// outlive their servers (aws): each listed server's, then those kept with
// no server, which cost money all the same.
func volumeNotes(ctx context.Context, be backend.Backend, servers []backend.Server) []string {
	var notes []string
	listed := map[string]bool{}
	for _, s := range servers {
		listed[s.User] = true
		if s.Volume != nil {
			notes = append(notes, s.User+": workspace "+volumeText(*s.Volume))
		}
	}
	vl, ok := be.(backend.VolumeLister)
	if !ok {
		return notes
	}
	vols, err := vl.Volumes(ctx)
	if err != nil {
		return append(notes, "workspace volumes: "+err.Error())
	}
	for _, user := range slices.Sorted(maps.Keys(vols)) {
		if !listed[user] {
			notes = append(notes, user+": no server; workspace "+volumeText(vols[user])+" kept (`spinbook down --purge --user "+user+"` deletes it)")
		}
	}
	return notes
}

func volumeText(v backend.Volume) string {
	s := fmt.Sprintf("%s (%d GiB %s in %s)", v.ID, v.GiB, v.Type, v.Zone)
	if v.MonthlyCost != nil {
		s += fmt.Sprintf(", about $%.2f a month", *v.MonthlyCost)
	}
	return s
}

// printList prints servers as `ls` does, and extra notes under the
// table.
func (e *env) printList(servers []serverJSON, extra []string) error {
	if e.json {
		return ui.JSON(e.stdout, servers)
	}
	if len(servers) == 0 {
		fmt.Fprintln(e.stderr, "no servers; start one with `spinbook up`")
		for _, n := range extra {
			fmt.Fprintln(e.stdout, n)
		}
		return nil
	}
	var rows [][]string
	var notes []string
	for _, s := range servers {
		up := "-"
		if s.State == backend.Running && !s.StartedAt.IsZero() {
			up = ui.Duration(time.Since(s.StartedAt))
		}
		state := string(s.State)
		if s.IdleJSON != nil && s.StopBlocked != "" {
			state += " (stop blocked)"
			notes = append(notes, s.User+": stop blocked: "+s.StopBlocked)
		}
		rows = append(rows, append([]string{s.User, state, up}, append(idleColumns(s.IdleJSON), s.URL)...))
	}
	notes = append(notes, extra...)
	if err := ui.Table(e.stdout, []string{"USER", "STATE", "UPTIME", "SIZE", "IDLE", "STOPS IN", "COST", "URL"}, rows); err != nil {
		return err
	}
	for _, n := range notes {
		fmt.Fprintln(e.stdout, n)
	}
	return nil
}
