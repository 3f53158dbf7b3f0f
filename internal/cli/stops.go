package cli

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spinbook/spinbook/internal/backend"
	"github.com/spinbook/spinbook/internal/config"
	"github.com/spinbook/spinbook/internal/models"
)

// stopRecords reads, from the model store, the records the agent of a
// spot server leaves when AWS takes its instance (agent.storeRecorder),
// for the aws backend's status and up; nil when no model store is
// configured.
func stopRecords(cfg *config.Config) backend.StopRecords {
	if !cfg.Models.Enabled() {
		return nil
	}
	return func(ctx context.Context, user string) (*backend.StopRecord, error) {
		m, err := resolveModels(ctx, cfg)
		if err != nil || m == nil {
			return nil, err
		}
		store, err := models.Open(ctx, models.Config{
			URL: m.URL, Endpoint: m.Endpoint, Region: m.Region, PathStyle: m.PathStyle,
			AccessKeyID: m.AccessKeyID, SecretAccessKey: m.SecretAccessKey,
		})
		if err != nil {
			return nil, err
		}
		objs, err := store.List(ctx, models.StopRecordsPrefix(user))
		if err != nil || len(objs) == 0 {
			return nil, err
		}
		last := objs[len(objs)-1] // named by time: the newest sorts last
		rc, _, err := store.Get(ctx, last.Name)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		var rec backend.StopRecord
		if err := json.NewDecoder(rc).Decode(&rec); err != nil {
			return nil, fmt.Errorf("stop record %s: %w", last.Name, err)
		}
		return &rec, nil
	}
}
