package listen

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
)

// maxCredID is the largest uid or gid a setting may name: the kernel's ids are
// 32-bit and (uid_t)-1 means "unchanged" to chown(2) and setresuid(2).
const maxCredID = 1<<32 - 2

// LookupUser resolves s, a user name or a numeric uid (HERD_UID, the owner
// option of a unix socket), to the uid and the user's primary gid.
//
// A number is taken as a uid first, as chown(1) and Docker's USER do, and
// need not exist in the user database; its primary gid is then -1. A name
// must exist. Without cgo, os/user reads /etc/passwd; with cgo it asks NSS.
func LookupUser(s string) (uid, primaryGID int, err error) {
	if s == "" {
		return 0, 0, errors.New("empty user: give a user name or a numeric uid")
	}
	if id, ok, err := parseCredID(s); ok {
		if err != nil {
			return 0, 0, fmt.Errorf("uid %s: %w", s, err)
		}
		u, err := user.LookupId(s)
		if err != nil {
			var unknown user.UnknownUserIdError
			if errors.As(err, &unknown) {
				return id, -1, nil
			}
			return 0, 0, fmt.Errorf("uid %s: %w", s, err)
		}
		gid, err := strconv.Atoi(u.Gid)
		if err != nil {
			return id, -1, nil
		}
		return id, gid, nil
	}
	u, err := user.Lookup(s)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return 0, 0, fmt.Errorf("unknown user %q: give a user name from /etc/passwd or a numeric uid (0-%d)", s, uint64(maxCredID))
		}
		return 0, 0, fmt.Errorf("user %q: %w", s, err)
	}
	uid, err = strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, fmt.Errorf("user %q: uid %q is not a number", s, u.Uid)
	}
	primaryGID, err = strconv.Atoi(u.Gid)
	if err != nil {
		primaryGID = -1
	}
	return uid, primaryGID, nil
}

// LookupGroup resolves s, a group name or a numeric gid (HERD_GID, the group
// option of a unix socket). A number need not exist in the group database; a
// name must. Without cgo, os/user reads /etc/group; with cgo it asks NSS.
func LookupGroup(s string) (gid int, err error) {
	if s == "" {
		return 0, errors.New("empty group: give a group name or a numeric gid")
	}
	if id, ok, err := parseCredID(s); ok {
		if err != nil {
			return 0, fmt.Errorf("gid %s: %w", s, err)
		}
		return id, nil
	}
	g, err := user.LookupGroup(s)
	if err != nil {
		var unknown user.UnknownGroupError
		if errors.As(err, &unknown) {
			return 0, fmt.Errorf("unknown group %q: give a group name from /etc/group or a numeric gid (0-%d)", s, uint64(maxCredID))
		}
		return 0, fmt.Errorf("group %q: %w", s, err)
	}
	gid, err = strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("group %q: gid %q is not a number", s, g.Gid)
	}
	return gid, nil
}

// parseCredID reports whether s is all decimal digits (ok) and, if so, whether
// it is a usable id.
func parseCredID(s string) (id int, ok bool, err error) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false, nil
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > maxCredID {
		return 0, true, fmt.Errorf("out of range: ids are 0-%d", uint64(maxCredID))
	}
	return int(n), true, nil
}
