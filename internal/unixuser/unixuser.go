// Package unixuser resolves a user as Docker's --user and an image's USER
// name one ("", "1000", "1000:100", "jovyan", "jovyan:users") against an
// /etc/passwd and /etc/group, with the Engine's rules, and lets a process
// started as root become that user.
package unixuser

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// A User is who a process runs as.
type User struct {
	UID, GID int
	// Groups are the supplementary groups: those of /etc/group that list
	// the user's name, as the Engine gives them.
	Groups []int
	// Home is the home in /etc/passwd, or "".
	Home string
}

// Resolve resolves spec against passwd and group (the files' contents;
// nil when missing). A name must be in passwd; a uid need not be (its group
// is then 0, the Engine's rule); a group given by name must be in group.
// The empty spec and "root" are uid 0.
func Resolve(spec string, passwd, group []byte) (User, error) {
	name, grp, _ := strings.Cut(spec, ":")
	if name == "" {
		name = "0"
	}
	u, entry, found := lookupPasswd(passwd, name)
	if !found {
		n, err := strconv.Atoi(name)
		if err != nil || n < 0 {
			return User{}, fmt.Errorf("the user %q is not in /etc/passwd", name)
		}
		u = User{UID: n}
	}
	if grp != "" {
		if n, err := strconv.Atoi(grp); err == nil && n >= 0 {
			u.GID = n
		} else if u.GID, found = lookupGroup(group, grp); !found {
			return User{}, fmt.Errorf("the group %q is not in /etc/group", grp)
		}
	}
	if entry != "" {
		u.Groups = memberOf(group, entry, u.GID)
	}
	return u, nil
}

// lookupPasswd finds user (a name or a uid) in an /etc/passwd, and returns
// the entry's name too.
func lookupPasswd(passwd []byte, user string) (User, string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(passwd))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 || (f[0] != user && f[2] != user) {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		u := User{UID: uid, GID: gid}
		if len(f) >= 6 {
			u.Home = f[5]
		}
		return u, f[0], true
	}
	return User{}, "", false
}

// lookupGroup finds a group name in an /etc/group.
func lookupGroup(groups []byte, name string) (gid int, ok bool) {
	sc := bufio.NewScanner(bytes.NewReader(groups))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) >= 3 && f[0] == name {
			if g, err := strconv.Atoi(f[2]); err == nil {
				return g, true
			}
		}
	}
	return 0, false
}

// memberOf lists the groups whose member list names user, and gid.
func memberOf(groups []byte, user string, gid int) []int {
	out := []int{gid}
	sc := bufio.NewScanner(bytes.NewReader(groups))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 || !slices.Contains(strings.Split(f[3], ","), user) {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}
