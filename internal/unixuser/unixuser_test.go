package unixuser

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestResolve(t *testing.T) {
	passwd := []byte("root:x:0:0:root:/root:/bin/bash\njovyan:x:1000:100::/home/jovyan:/bin/bash\nbroken:x:1001\nada:x:1001:100::/home/ada:/bin/sh\n")
	group := []byte("root:x:0:\nusers:x:100:\nstaff:x:50:ada,jovyan\ndocker:x:999:ada\nbad:x:oops:jovyan\n")
	tests := []struct {
		spec    string
		want    User
		wantErr string
	}{
		{"jovyan", User{UID: 1000, GID: 100, Groups: []int{100, 50}, Home: "/home/jovyan"}, ""},
		{"1000", User{UID: 1000, GID: 100, Groups: []int{100, 50}, Home: "/home/jovyan"}, ""},
		{"ada:users", User{UID: 1001, GID: 100, Groups: []int{100, 50, 999}, Home: "/home/ada"}, ""},
		{"ada:0", User{UID: 1001, GID: 0, Groups: []int{0, 50, 999}, Home: "/home/ada"}, ""},
		{"", User{UID: 0, GID: 0, Groups: []int{0}, Home: "/root"}, ""},
		{"root", User{UID: 0, GID: 0, Groups: []int{0}, Home: "/root"}, ""},
		{"4242", User{UID: 4242}, ""}, // a uid without an entry: group 0, the Engine's rule
		{"4242:100", User{UID: 4242, GID: 100}, ""},
		{"alice", User{}, `the user "alice" is not in /etc/passwd`},
		{"broken", User{}, `the user "broken" is not in /etc/passwd`},
		{"jovyan:wheel", User{}, `the group "wheel" is not in /etc/group`},
		{"-1", User{}, `the user "-1" is not in /etc/passwd`},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := Resolve(tt.spec, passwd, group)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("Resolve(%q) error = %v, want %q", tt.spec, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tt.spec, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Resolve(%q) (-want +got):\n%s", tt.spec, diff)
			}
		})
	}
	if got, err := Resolve("1000", nil, nil); err != nil || got.UID != 1000 || got.GID != 0 {
		t.Errorf("Resolve with no /etc/passwd = %+v, %v; want uid 1000 gid 0", got, err)
	}
}
