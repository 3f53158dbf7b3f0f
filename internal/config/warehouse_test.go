package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWarehouseDefaults(t *testing.T) {
	hermetic(t)
	tests := []struct {
		name string
		yaml string
		want Warehouse
	}{
		{
			name: "none",
			yaml: "",
			want: Warehouse{},
		},
		{
			name: "postgres",
			yaml: "warehouse: {host: dw.example.com, database: analytics, user: nb, password: '${env:DW_PASSWORD}'}",
			want: Warehouse{Host: "dw.example.com", Port: 5432, Database: "analytics", User: "nb", Password: "${env:DW_PASSWORD}", SSLMode: "prefer"},
		},
		{
			name: "redshift",
			yaml: "warehouse: {host: wh.abc123.eu-west-1.redshift.amazonaws.com, database: dev, user: nb}",
			want: Warehouse{Host: "wh.abc123.eu-west-1.redshift.amazonaws.com", Port: 5439, Database: "dev", User: "nb", SSLMode: "require"},
		},
		{
			name: "redshift serverless, upper case",
			yaml: "warehouse: {host: WG.123456789012.us-east-1.Redshift-Serverless.amazonaws.com, database: dev, user: nb}",
			want: Warehouse{Host: "WG.123456789012.us-east-1.Redshift-Serverless.amazonaws.com", Port: 5439, Database: "dev", User: "nb", SSLMode: "require"},
		},
		{
			name: "redshift with explicit port and sslmode",
			yaml: "warehouse: {host: wh.abc123.eu-west-1.redshift.amazonaws.com, port: 6543, database: dev, user: nb, sslmode: verify-full}",
			want: Warehouse{Host: "wh.abc123.eu-west-1.redshift.amazonaws.com", Port: 6543, Database: "dev", User: "nb", SSLMode: "verify-full"},
		},
		{
			name: "not quite redshift",
			yaml: "warehouse: {host: redshift.amazonaws.com.example.org, database: dev, user: nb}",
			want: Warehouse{Host: "redshift.amazonaws.com.example.org", Port: 5432, Database: "dev", User: "nb", SSLMode: "prefer"},
		},
		{
			name: "ipv6 and a literal password with pgpass specials",
			yaml: `warehouse: {host: "::1", database: db, user: "a:b", password: 'lit:er\al'}`,
			want: Warehouse{Host: "::1", Port: 5432, Database: "db", User: "a:b", Password: `lit:er\al`, SSLMode: "prefer"},
		},
		{
			name: "unix socket directory, aws reference",
			yaml: "warehouse: {host: /var/run/postgresql, database: db, user: nb, password: '${aws-ssm:/team/dw}'}",
			want: Warehouse{Host: "/var/run/postgresql", Port: 5432, Database: "db", User: "nb", Password: "${aws-ssm:/team/dw}", SSLMode: "prefer"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml), "spinbook.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, c.Warehouse); diff != "" {
				t.Errorf("Warehouse (-want +got):\n%s", diff)
			}
			if c.Warehouse.Enabled() != (tt.want.Host != "") {
				t.Errorf("Enabled() = %v", c.Warehouse.Enabled())
			}
		})
	}
}

func TestWarehouseHosts(t *testing.T) {
	hermetic(t)
	tests := []struct {
		host string
		want string // part of the error; "" = valid
	}{
		{"dw.example.com", ""},
		{"dw-1.internal.", ""},
		{"10.1.2.3", ""},
		{"2001:db8::5", ""},
		{"localhost", ""},
		{"dw.example.com:5439", `has a port; give the host "dw.example.com" here and the port 5439`},
		{"[2001:db8::5]:5432", `give the host "2001:db8::5" here`},
		{"fe80::1%eth0", "has a zone"},
		{"dw example.com", "is not a host name"},
		{"-dw.example.com", "is not a host name"},
		{"dw..example.com", "is not a host name"},
		{"postgres://nb:" + "hunter2" + "@dw/analytics", "looks like a URL"},
		{"nb:hunter2@dw", "looks like a URL"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			_, err := Parse([]byte("warehouse: {database: db, user: nb, host: '"+tt.host+"'}"), "spinbook.yaml")
			if tt.want == "" {
				if err != nil {
					t.Fatalf("host %q: %v", tt.host, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("host %q: error %v, want one containing %q", tt.host, err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error quotes a password: %v", err)
			}
		})
	}
}

func TestSecretsListsWarehousePassword(t *testing.T) {
	hermetic(t)
	c, err := Parse([]byte("backend: local\nwarehouse:\n  host: dw\n  database: db\n  user: nb\n  password: ${env:DW_PASSWORD}\n"), "spinbook.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []Secret{{Path: "warehouse.password", Value: "${env:DW_PASSWORD}", Line: 6}}
	if diff := cmp.Diff(want, c.Secrets()); diff != "" {
		t.Errorf("Secrets (-want +got):\n%s", diff)
	}
	if got := Default().Secrets(); len(got) != 0 {
		t.Errorf("Default().Secrets() = %v, want none", got)
	}
}

func TestWarehouseLiteralPasswordNeverQuoted(t *testing.T) {
	hermetic(t)
	const pw = "pa55\nword-canary"
	_, err := Parse([]byte("warehouse: {host: dw, database: db, user: nb, password: \"pa55\\nword-canary\"}"), "spinbook.yaml")
	if err == nil || !strings.Contains(err.Error(), "warehouse.password: holds a line break") {
		t.Fatalf("error %v, want one about the line break", err)
	}
	if strings.Contains(err.Error(), "canary") || strings.Contains(err.Error(), pw) {
		t.Errorf("the error quotes the password: %v", err)
	}
}
