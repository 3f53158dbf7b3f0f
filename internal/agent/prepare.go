package agent

import (
	"context"
	"os"
)

// prepare readies the server before Jupyter starts — the place where the
// team repo is cloned and credential files are written — and returns the
// environment that Jupyter and its kernels get on top of the agent's own.
// venv is the virtualenv Jupyter runs from ("" for none), activated for
// them.
func (a *Agent) prepare(ctx context.Context, venv string) ([]string, error) {
	var env []string
	wenv, err := a.prepareWarehouse()
	if err != nil {
		return nil, err
	}
	env = append(env, wenv...)
	menv, err := a.prepareModels()
	if err != nil {
		return nil, err
	}
	env = append(env, menv...)
	renv, err := a.prepareRepo(ctx)
	if err != nil {
		return nil, err
	}
	env = append(env, renv...)
	path, venvVars := venvEnv(venv, os.Getenv("PATH"))
	penv, err := spinbookOnPath(path)
	if err != nil {
		return nil, err
	}
	env = append(append(env, penv...), venvVars...)
	return env, nil
}
