package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spinbook/spinbook/internal/models"
)

// prepareModels sets the server up for the model store, when one is
// configured, and returns the environment for Jupyter, kernels and
// terminals:
//
//   - `spinbook models` finds CredentialsDir/.spinbook/config.yaml through
//     SPINBOOK_CONFIG; it holds the store's keys only as ${file:...}
//     references to 0600 files beside it, never the keys themselves;
//   - boto3 and the aws CLI find a [default] profile in
//     CredentialsDir/.aws/credentials (0600) and the region, addressing
//     style and checksum settings in .aws/config, through
//     AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE, and a custom
//     endpoint in AWS_ENDPOINT_URL_S3.
//
// Without keys (the instance role on AWS) no credentials file is written.
func (a *Agent) prepareModels() ([]string, error) {
	m := a.spec.Models
	if m == nil {
		return nil, nil
	}
	a.redact.Add(m.SecretAccessKey) // listed in Secrets too; never rely on one place
	dir := a.spec.CredentialsDir
	if dir == "" {
		return nil, errors.New("model store: the backend gave no credentials directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("model store: %w", err)
	}
	owner, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("model store: %w", err)
	}
	keys := m.AccessKeyID != "" && m.SecretAccessKey != ""
	if keys && strings.ContainsAny(m.AccessKeyID+m.SecretAccessKey, "\r\n\x00") {
		return nil, errors.New("model store: a key holds a line break or NUL")
	}
	var env []string
	if keys {
		// The configured keys win over whatever AWS credentials the agent
		// inherited: environment variables would beat the credentials file.
		for _, name := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"} {
			os.Unsetenv(name)
		}
	}

	// spinbook's own config for `spinbook models` in kernels and terminals.
	own := filepath.Join(dir, ".spinbook")
	cfg := "# Written by the spinbook agent for `spinbook models` inside this server.\nmodels:\n"
	cfg += "  url: " + yamlString(m.URL) + "\n"
	if m.Endpoint != "" {
		cfg += "  endpoint: " + yamlString(m.Endpoint) + "\n"
	}
	if m.Region != "" {
		cfg += "  region: " + yamlString(m.Region) + "\n"
	}
	if m.PathStyle {
		cfg += "  path_style: true\n"
	}
	if keys {
		idFile, secretFile := filepath.Join(own, "models-access-key-id"), filepath.Join(own, "models-secret-access-key")
		if err := writePrivate(idFile, m.AccessKeyID+"\n", owner); err != nil {
			return nil, err
		}
		if err := writePrivate(secretFile, m.SecretAccessKey+"\n", owner); err != nil {
			return nil, err
		}
		cfg += "  access_key_id: " + yamlString("${file:"+idFile+"}") + "\n"
		cfg += "  secret_access_key: " + yamlString("${file:"+secretFile+"}") + "\n"
	}
	cfgPath := filepath.Join(own, "config.yaml")
	if err := writePrivate(cfgPath, cfg, owner); err != nil {
		return nil, err
	}
	env = append(env, "SPINBOOK_CONFIG="+cfgPath)

	// boto3 and the aws CLI.
	awsDir := filepath.Join(dir, ".aws")
	region := m.Region
	if region == "" {
		region = "us-east-1"
	}
	awsCfg := "[default]\nregion = " + region + "\n" +
		// Non-AWS stores reject the checksums newer SDKs add by default.
		"request_checksum_calculation = when_required\nresponse_checksum_validation = when_required\n"
	if m.PathStyle {
		awsCfg += "s3 =\n    addressing_style = path\n"
	}
	if err := writePrivate(filepath.Join(awsDir, "config"), awsCfg, owner); err != nil {
		return nil, err
	}
	env = append(env, "AWS_CONFIG_FILE="+filepath.Join(awsDir, "config"))
	if keys {
		creds := "[default]\naws_access_key_id = " + m.AccessKeyID + "\naws_secret_access_key = " + m.SecretAccessKey + "\n"
		if err := writePrivate(filepath.Join(awsDir, "credentials"), creds, owner); err != nil {
			return nil, err
		}
		env = append(env, "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(awsDir, "credentials"))
	}
	if m.Endpoint != "" {
		env = append(env, "AWS_ENDPOINT_URL_S3="+m.Endpoint)
	}
	a.log.Info("model store ready", "url", m.URL, "endpoint", m.Endpoint, "keys", keys)
	return env, nil
}

// modelStore opens the configured model store; nil (and no error) when
// there is none. A save that cannot reach the git remote stores its bundle
// there too: models.PutBundle(ctx, store, a.spec.User, bundlePath), which
// names it spinbook/bundles/<user>/<file> and never replaces one.
func (a *Agent) modelStore(ctx context.Context) (models.Store, error) {
	m := a.spec.Models
	if m == nil {
		return nil, nil
	}
	return models.Open(ctx, models.Config{
		URL: m.URL, Endpoint: m.Endpoint, Region: m.Region, PathStyle: m.PathStyle,
		AccessKeyID: m.AccessKeyID, SecretAccessKey: m.SecretAccessKey,
	})
}

// spinbookOnPath returns PATH=path with the directory of the agent's own binary
// first, so kernels and terminals run the same spinbook as the agent.
func spinbookOnPath(path string) ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the spinbook binary: %w", err)
	}
	dir := filepath.Dir(exe)
	if path == "" {
		return []string{"PATH=" + dir}, nil
	}
	return []string{"PATH=" + dir + string(os.PathListSeparator) + path}, nil
}

// writePrivate writes data to path with mode 0600 (its directory 0700),
// replacing any old file, and gives both to owner's user when the agent
// runs as root. Errors name the file, never what was written.
func writePrivate(path, data string, owner os.FileInfo) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	st, _ := owner.Sys().(*syscall.Stat_t)
	chown := st != nil && os.Geteuid() == 0 && int(st.Uid) != 0
	if chown {
		os.Chown(dir, int(st.Uid), int(st.Gid))
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*") // mode 0600
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // after the rename, nothing is left to remove
	_, err = f.WriteString(data)
	if err == nil && chown {
		err = f.Chown(int(st.Uid), int(st.Gid))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// yamlString quotes s for YAML: a JSON string is a YAML double-quoted scalar.
func yamlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
