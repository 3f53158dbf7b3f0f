package agentcmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spinbook/spinbook/internal/models"
	"github.com/spinbook/spinbook/internal/secret"
	"github.com/spinbook/spinbook/internal/ui"
)

// modelsCmd is `spinbook models put|get|ls|rm` inside a container, pod or
// task, where the agent binary is the spinbook on PATH: kernels and
// terminals use the model store as on the command line (README, "Model
// store"), with the store the agent set up. The config is the one the
// agent wrote (agent.prepareModels, $SPINBOOK_CONFIG): only its models
// section is read. Puts go up in one request (up to 5 GiB; larger files
// from the command line, which sends parts).
func modelsCmd(ctx context.Context, args []string, s stdio) error {
	var pos []string
	force, asJSON := false, false
	for _, a := range args {
		switch a {
		case "--force":
			force = true
		case "--json":
			asJSON = true
		default:
			if strings.HasPrefix(a, "-") && a != "-" {
				return usagef("models: unknown flag %s (the server's spinbook knows --force and --json)", a)
			}
			pos = append(pos, a)
		}
	}
	if len(pos) == 0 {
		return usagef("models: want put FILE [NAME], get NAME [FILE|-], ls [PREFIX] or rm NAME")
	}
	op, pos := pos[0], pos[1:]
	arity := map[string][2]int{"put": {1, 2}, "get": {1, 2}, "ls": {0, 1}, "rm": {1, 1}}
	n, ok := arity[op]
	if !ok || len(pos) < n[0] || len(pos) > n[1] {
		return usagef("models: want put FILE [NAME], get NAME [FILE|-], ls [PREFIX] or rm NAME")
	}
	store, err := openModels(ctx)
	if err != nil {
		return err
	}
	switch op {
	case "put":
		name := pos[0][strings.LastIndex(pos[0], "/")+1:]
		if len(pos) == 2 {
			name = pos[1]
		}
		if err := models.ValidateName(name); err != nil {
			return usageError{err}
		}
		if err := models.PutFile(ctx, store, pos[0], name, models.PutOptions{Force: force}, nil); err != nil {
			return err
		}
		o, err := store.Stat(ctx, name)
		if err != nil {
			return err
		}
		if asJSON {
			return ui.JSON(s.stdout, o)
		}
		fmt.Fprintf(s.stdout, "stored %s in %s (%s, sha256 %s)\n", name, store.URL(), ui.Bytes(o.Size), o.SHA256)
	case "get":
		name, dest := pos[0], ""
		if len(pos) == 2 {
			dest = pos[1]
		}
		var o models.Object
		if dest == "-" {
			o, err = models.Copy(ctx, store, name, s.stdout, nil)
		} else {
			o, dest, err = models.GetFile(ctx, store, name, dest, nil)
		}
		if err != nil {
			return err
		}
		switch {
		case dest == "-":
		case asJSON:
			return ui.JSON(s.stdout, struct {
				models.Object
				Path string `json:"path"`
			}{o, dest})
		default:
			fmt.Fprintf(s.stdout, "fetched %s to %s (%s, sha256 %s)\n", name, dest, ui.Bytes(o.Size), models.NonEmpty(o.SHA256, "unknown"))
		}
	case "ls":
		prefix := ""
		if len(pos) == 1 {
			prefix = pos[0]
		}
		list, err := store.List(ctx, prefix)
		if err != nil {
			return err
		}
		if asJSON {
			if list == nil {
				list = []models.Object{}
			}
			return ui.JSON(s.stdout, list)
		}
		rows := make([][]string, len(list))
		for i, o := range list {
			rows[i] = []string{o.Name, ui.Bytes(o.Size), o.Modified.Format(time.DateTime), models.NonEmpty(o.SHA256, "-")}
		}
		return ui.Table(s.stdout, []string{"NAME", "SIZE", "MODIFIED", "SHA256"}, rows)
	case "rm":
		if err := store.Remove(ctx, pos[0]); err != nil {
			return err
		}
		if asJSON {
			return ui.JSON(s.stdout, map[string]any{"name": pos[0], "removed": true})
		}
		fmt.Fprintf(s.stdout, "removed %s from %s\n", pos[0], store.URL())
	}
	return nil
}

// openModels opens the store of $SPINBOOK_CONFIG's models section.
func openModels(ctx context.Context) (models.Store, error) {
	path := os.Getenv("SPINBOOK_CONFIG")
	if path == "" {
		return nil, usagef("models: no model store here: $SPINBOOK_CONFIG is not set (the agent sets it in servers with a model store)")
	}
	m, err := readModelsSection(path)
	if err != nil {
		return nil, usageError{err}
	}
	if m["url"] == "" {
		return nil, usagef("models: no model store is configured: %s has no models.url", path)
	}
	cfg := models.Config{URL: m["url"], Endpoint: m["endpoint"], Region: m["region"], PathStyle: m["path_style"] == "true"}
	if cfg.AccessKeyID, err = secret.Resolve(ctx, m["access_key_id"]); err != nil {
		return nil, usagef("models.access_key_id: %w", err)
	}
	if cfg.SecretAccessKey, err = secret.Resolve(ctx, m["secret_access_key"]); err != nil {
		return nil, usagef("models.secret_access_key: %w", err)
	}
	store, err := models.Open(ctx, cfg)
	if err != nil {
		return nil, usageError{err}
	}
	return store, nil
}

// readModelsSection reads the scalar keys of the top-level models: block
// of the YAML file at path, as the agent writes it (values quoted as JSON
// strings, or bare).
func readModelsSection(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("models: read the config: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	in := false
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		trimmed := strings.TrimSpace(text)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
			continue
		case !strings.HasPrefix(text, " ") && !strings.HasPrefix(text, "\t"):
			in = strings.TrimSpace(strings.SplitN(trimmed, "#", 2)[0]) == "models:"
			continue
		case !in:
			continue
		}
		key, value, ok := strings.Cut(trimmed, ":")
		if !ok {
			return nil, fmt.Errorf("models: %s line %d: not key: value", path, line)
		}
		value = strings.TrimSpace(value)
		switch {
		case strings.HasPrefix(value, `"`):
			if value, err = strconv.Unquote(value); err != nil {
				return nil, fmt.Errorf("models: %s line %d: a quoted value that does not end", path, line)
			}
		case strings.HasPrefix(value, "'"):
			value = strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(value, "'"), "'"), "''", "'")
		default:
			value = strings.TrimSpace(strings.SplitN(value, " #", 2)[0])
		}
		out[strings.TrimSpace(key)] = value
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("models: read the config: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("models: no model store is configured: the config has no models section")
	}
	return out, nil
}
