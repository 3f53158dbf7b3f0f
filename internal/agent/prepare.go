package agent

import "context"

// prepare readies the server before Jupyter starts — the place where the
// team repo is cloned and credential files are written — and returns the
// environment that Jupyter and its kernels get on top of the agent's own.
func (a *Agent) prepare(ctx context.Context) ([]string, error) {
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
	penv, err := spinbookOnPath()
	if err != nil {
		return nil, err
	}
	env = append(env, penv...)
	return env, nil
}
