package config

import "github.com/spinbook/spinbook/internal/secret"

// A Secret is a config key whose value is a secret, written literally or as
// a reference (${env:NAME}, ${file:PATH}; see package secret).
type Secret struct {
	// Path is the key's YAML path, such as "warehouse.password".
	Path string
	// Value is what the file says: a literal secret or a reference.
	Value string
	// Line is the key's line in the file; 0 when unknown.
	Line int
}

// Secrets lists the keys of c that hold a secret and are set, in a fixed
// order. Every key that holds a secret belongs here: Validate checks the
// form of their references, `spinbook up` resolves exactly these before
// anything starts, and `spinbook status` reports them.
func (c *Config) Secrets() []Secret {
	var out []Secret
	add := func(path, value string) {
		if value != "" {
			out = append(out, Secret{Path: path, Value: value, Line: c.lines[path]})
		}
	}
	add("warehouse.password", c.Warehouse.Password)
	add("models.access_key_id", c.Models.AccessKeyID)
	add("models.secret_access_key", c.Models.SecretAccessKey)
	add("repo.token", c.Repo.Token)
	if _, isRef, _ := secret.ParseRef(c.Access.TLS.Key); isRef {
		add("access.tls.key", c.Access.TLS.Key) // else the path of the key file
	}
	return out
}

// secretRefs checks that every reference among the secrets is well formed.
func (v *validation) secretRefs() {
	for _, s := range v.c.Secrets() {
		if _, _, err := secret.ParseRef(s.Value); err != nil {
			v.problemf(s.Path, "%v", err)
		}
	}
}
