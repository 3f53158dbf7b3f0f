package backend

// Repo is the team's git repository as the agent needs it: cloned into the
// workspace on the first start, saved back on `spinbook save`, `down` and
// SIGTERM. Values are as validated by package config.
type Repo struct {
	URL string `json:"url"`
	// Branch is "" for the remote's default branch.
	Branch string `json:"branch,omitempty"`
	// Token is the resolved secret, never a reference; "" when the remote
	// needs no login.
	Token string `json:"token,omitempty"`
	// AuthorName and AuthorEmail sign the commits; "" gives the user name
	// and USER@users.noreply.spinbook.invalid.
	AuthorName  string `json:"author_name,omitempty"`
	AuthorEmail string `json:"author_email,omitempty"`
	// StripOutputs commits notebooks without their outputs.
	StripOutputs bool `json:"strip_outputs,omitempty"`
}
