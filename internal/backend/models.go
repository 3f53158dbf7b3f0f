package backend

// Models is the model store the agent sets up inside a server, as the
// command line resolved it from the config's models section: `spinbook
// models` there gets a config of its own (SPINBOOK_CONFIG), and boto3 and
// the aws CLI get CredentialsDir/.aws/credentials (0600) and .aws/config
// (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE, AWS_ENDPOINT_URL_S3).
type Models struct {
	URL       string `json:"url"`
	Endpoint  string `json:"endpoint,omitempty"`
	Region    string `json:"region,omitempty"`
	PathStyle bool   `json:"path_style,omitempty"`
	// AccessKeyID and SecretAccessKey are the resolved keys, never
	// references; both "" to use the instance role.
	AccessKeyID     string `json:"access_key_id,omitempty"`
	SecretAccessKey string `json:"secret_access_key,omitempty"`
}
