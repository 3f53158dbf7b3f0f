package backend

// Warehouse is the data warehouse the agent sets up libpq for: it writes
// CredentialsDir/.pgpass (0600) and gives Jupyter, kernels and terminals
// PGPASSFILE, PGHOST, PGPORT, PGDATABASE, PGUSER and PGSSLMODE, never
// PGPASSWORD. Values are as validated by package config.
type Warehouse struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Database string `json:"database"`
	User     string `json:"user"`
	// Password is the resolved secret, never a reference; "" when the
	// server needs none (then no .pgpass is written).
	Password string `json:"password,omitempty"`
	SSLMode  string `json:"sslmode"`
}
