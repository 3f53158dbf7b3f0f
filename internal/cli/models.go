package cli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/models"
	"github.com/spinbook/spinbook/internal/models/s3sdk"
	"github.com/spinbook/spinbook/internal/secret"
	"github.com/spinbook/spinbook/internal/secret/awssecret"
	"github.com/spinbook/spinbook/internal/ui"
)

func newModels(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "models",
		Short: "Put, get, list and remove models in the model store",
		Long: `Keep trained models in the store the config's models section names — an S3
bucket (AWS or any S3-compatible server) or a directory — so that they outlive
every server. The same commands work inside every server, where boto3 and the
aws CLI are set up with the same credentials.

Every model carries the SHA-256 of its contents, checked on every get. A put
never replaces a model unless --force, and an interrupted put leaves nothing
behind under the name. Names are paths such as team/churn/model-v3.pkl: no
leading /, no . or .. parts, no hidden (.x) parts, no control characters.`,
		Example: `  spinbook models put model.pkl churn/model-v3.pkl
  spinbook models get churn/model-v3.pkl
  spinbook models ls churn/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newModelsPut(e), newModelsGet(e), newModelsLs(e), newModelsRm(e))
	return cmd
}

func newModelsPut(e *env) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "put FILE [NAME]",
		Short: "Store FILE as NAME (default: FILE's base name)",
		Long: `Store FILE in the model store as NAME (default: FILE's base name). The file's
SHA-256 is computed first and stored with it; large files go up in parallel
parts. An existing NAME is never replaced unless --force. If the put fails or
is interrupted, nothing is stored under NAME.`,
		Example: `  spinbook models put model.pkl                      # stored as model.pkl
  spinbook models put out/model.pt churn/model-v3.pt  # under a name of your own
  spinbook models put model.pkl --force              # replace an existing one`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			name := filepath.Base(file)
			if len(args) == 2 {
				name = args[1]
			}
			if err := models.ValidateName(name); err != nil {
				return usageError{err}
			}
			store, err := e.openModels(cmd.Context())
			if err != nil {
				return err
			}
			bar := ui.NewBar(e.stderr, name)
			err = models.PutFile(cmd.Context(), store, file, name, models.PutOptions{Force: force}, bar)
			bar.Done()
			if err != nil {
				return modelsError(err)
			}
			o, err := store.Stat(cmd.Context(), name)
			if err != nil {
				return modelsError(err)
			}
			if e.json {
				return ui.JSON(e.stdout, o)
			}
			fmt.Fprintf(e.stdout, "stored %s in %s (%s, sha256 %s)\n", name, store.URL(), ui.Bytes(o.Size), o.SHA256)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing model of the same name")
	return cmd
}

func newModelsGet(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get NAME [FILE|-]",
		Short: "Fetch NAME into FILE (default: its base name here), or - for stdout",
		Long: `Fetch NAME from the model store into FILE (default: NAME's base name in the
current directory; a directory: that name in it), in parallel parts. The file
is written next to FILE under a temporary name and moved into place only once
its SHA-256 matches the stored one, replacing an older FILE; on a mismatch or
any other error no file is left. With -, the contents stream to stdout and a
mismatch is reported at the end with a non-zero exit.`,
		Example: `  spinbook models get churn/model-v3.pkl               # ./model-v3.pkl
  spinbook models get churn/model-v3.pkl /data/m.pkl   # to a path of your own
  spinbook models get churn/model-v3.pkl - | python3 load.py`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, dest := args[0], ""
			if len(args) == 2 {
				dest = args[1]
			}
			if err := models.ValidateName(name); err != nil {
				return usageError{err}
			}
			store, err := e.openModels(cmd.Context())
			if err != nil {
				return err
			}
			bar := ui.NewBar(e.stderr, name)
			var o models.Object
			if dest == "-" {
				o, err = models.Copy(cmd.Context(), store, name, e.stdout, bar)
			} else {
				o, dest, err = models.GetFile(cmd.Context(), store, name, dest, bar)
			}
			bar.Done()
			if err != nil {
				return modelsError(err)
			}
			if o.SHA256 == "" {
				fmt.Fprintf(e.stderr, "warning: %s has no sha256 in the store (stored by another tool), so it was not verified\n", name)
			}
			switch {
			case dest == "-":
			case e.json:
				return ui.JSON(e.stdout, struct {
					models.Object
					Path string `json:"path"`
				}{o, dest})
			default:
				fmt.Fprintf(e.stdout, "fetched %s to %s (%s, sha256 %s)\n", name, dest, ui.Bytes(o.Size), nonEmpty(o.SHA256, "unknown"))
			}
			return nil
		},
	}
	return cmd
}

func newModelsLs(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "ls [PREFIX]",
		Short: "List models: name, size, modified, sha256",
		Long: `List the models whose names start with PREFIX (default: all), sorted by name,
with size, time of the last put (UTC) and SHA-256. Git bundles saved by
spinbook live under spinbook/bundles/USER/.`,
		Example: `  spinbook models ls
  spinbook models ls churn/
  spinbook models ls --json | jq -r '.[].name'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			if err := models.ValidatePrefix(prefix); err != nil {
				return usageError{err}
			}
			store, err := e.openModels(cmd.Context())
			if err != nil {
				return err
			}
			list, err := store.List(cmd.Context(), prefix)
			if err != nil {
				return modelsError(err)
			}
			if e.json {
				if list == nil {
					list = []models.Object{}
				}
				return ui.JSON(e.stdout, list)
			}
			rows := make([][]string, len(list))
			for i, o := range list {
				rows[i] = []string{o.Name, ui.Bytes(o.Size), o.Modified.Format(time.DateTime), nonEmpty(o.SHA256, "-")}
			}
			return ui.Table(e.stdout, []string{"NAME", "SIZE", "MODIFIED", "SHA256"}, rows)
		},
	}
}

func newModelsRm(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Short:   "Remove NAME from the model store",
		Example: `  spinbook models rm churn/model-v1.pkl`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := models.ValidateName(name); err != nil {
				return usageError{err}
			}
			store, err := e.openModels(cmd.Context())
			if err != nil {
				return err
			}
			if err := store.Remove(cmd.Context(), name); err != nil {
				return modelsError(err)
			}
			if e.json {
				return ui.JSON(e.stdout, map[string]any{"name": name, "removed": true})
			}
			fmt.Fprintf(e.stdout, "removed %s from %s\n", name, store.URL())
			return nil
		},
	}
}

// openModels opens the store the config names, resolving its keys.
func (e *env) openModels(ctx context.Context) (models.Store, error) {
	cfg, err := e.loadConfig()
	if err != nil {
		return nil, err
	}
	m, err := resolveModels(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if m == nil {
		where := cfg.Path
		if where == "" {
			where = "spinbook.yaml (`spinbook init` writes one)"
		}
		return nil, usagef("no model store is configured: set models.url in %s", where)
	}
	store, err := s3sdk.Open(ctx, models.Config{
		URL: m.URL, Endpoint: m.Endpoint, Region: m.Region, PathStyle: m.PathStyle,
		AccessKeyID: m.AccessKeyID, SecretAccessKey: m.SecretAccessKey,
	})
	if err != nil {
		return nil, usageError{err}
	}
	return store, nil
}

// resolveModels returns the config's model store with its keys resolved,
// or nil when none is configured. A missing secret is a config error that
// names the reference, never a value.
func resolveModels(ctx context.Context, cfg *config.Config) (*backend.Models, error) {
	m := cfg.Models
	if !m.Enabled() {
		return nil, nil
	}
	out := &backend.Models{URL: m.URL, Endpoint: m.Endpoint, Region: m.Region, PathStyle: m.PathStyle}
	ctx = awssecret.With(ctx, awssecret.Location{Region: cfg.AWS.Region, Profile: cfg.AWS.Profile})
	var err error
	if out.AccessKeyID, err = secret.Resolve(ctx, m.AccessKeyID); err != nil {
		return nil, usagef("models.access_key_id: %w", err)
	}
	if out.SecretAccessKey, err = secret.Resolve(ctx, m.SecretAccessKey); err != nil {
		return nil, usagef("models.secret_access_key: %w", err)
	}
	return out, nil
}

// modelsError makes a refused name a usage error (exit 2); other store
// errors already say what failed and what to check.
func modelsError(err error) error {
	if errors.Is(err, models.ErrInvalidName) {
		return usageError{err}
	}
	return err
}

func nonEmpty(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

// modelsSpec is the model store the agent sets up in a server, with the
// keys resolveSecrets resolved; nil when none is configured.
func modelsSpec(m *config.Models, secrets *resolvedSecrets) *backend.Models {
	if !m.Enabled() {
		return nil
	}
	return &backend.Models{
		URL: m.URL, Endpoint: m.Endpoint, Region: m.Region, PathStyle: m.PathStyle,
		AccessKeyID:     secrets.byPath["models.access_key_id"],
		SecretAccessKey: secrets.byPath["models.secret_access_key"],
	}
}
