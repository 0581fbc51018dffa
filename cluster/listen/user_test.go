package listen

import (
	"strings"
	"testing"
)

func TestLookupUser(t *testing.T) {
	for _, tc := range []struct {
		in       string
		uid, gid int
		err      string
	}{
		{in: "root", uid: 0, gid: 0},
		{in: "0", uid: 0, gid: 0},
		{in: "nobody", uid: 65534, gid: 65534},
		{in: "65534", uid: 65534, gid: 65534},
		{in: "4000000", uid: 4000000, gid: -1}, // numeric, in no file
		{in: "4294967294", uid: 4294967294, gid: -1},
		{in: "", err: "empty user: give a user name or a numeric uid"},
		{in: "no-such-user-herd", err: `unknown user "no-such-user-herd": give a user name from /etc/passwd or a numeric uid (0-4294967294)`},
		{in: "4294967295", err: "uid 4294967295: out of range: ids are 0-4294967294"},
		{in: "99999999999999999999", err: "out of range"},
		{in: "-1", err: `unknown user "-1"`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			uid, gid, err := LookupUser(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("LookupUser(%q) = %d, %d, %v; want error containing %q", tc.in, uid, gid, err, tc.err)
				}
				return
			}
			if err != nil || uid != tc.uid || gid != tc.gid {
				t.Fatalf("LookupUser(%q) = %d, %d, %v; want %d, %d", tc.in, uid, gid, err, tc.uid, tc.gid)
			}
		})
	}
}

func TestLookupGroup(t *testing.T) {
	for _, tc := range []struct {
		in  string
		gid int
		err string
	}{
		{in: "root", gid: 0},
		{in: "0", gid: 0},
		{in: "nogroup", gid: 65534},
		{in: "4000000", gid: 4000000},
		{in: "", err: "empty group: give a group name or a numeric gid"},
		{in: "no-such-group-herd", err: `unknown group "no-such-group-herd": give a group name from /etc/group or a numeric gid (0-4294967294)`},
		{in: "4294967295", err: "gid 4294967295: out of range"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			gid, err := LookupGroup(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("LookupGroup(%q) = %d, %v; want error containing %q", tc.in, gid, err, tc.err)
				}
				return
			}
			if err != nil || gid != tc.gid {
				t.Fatalf("LookupGroup(%q) = %d, %v; want %d", tc.in, gid, err, tc.gid)
			}
		})
	}
}
