package cli

import (
	"testing"

	"github.com/spinbook/spinbook/internal/gitwork"
)

func TestPurgeAllowedOnlyWhenNothingIsLost(t *testing.T) {
	pushed := &saveJSON{Repo: true, Result: &gitwork.Result{Saved: true, PushedTo: "main"}}
	upToDate := &saveJSON{Repo: true, Result: &gitwork.Result{Saved: true, UpToDate: true}}
	bundled := &saveJSON{Repo: true, Result: &gitwork.Result{Saved: true, Bundle: "/w/.git/spinbook-bundles/x.bundle"}}
	failed := &saveJSON{Repo: true, Result: &gitwork.Result{}}
	noRepo := &saveJSON{Repo: false}
	tests := []struct {
		name     string
		haveRepo bool
		saved    *saveJSON
		force    bool
		ok       bool
	}{
		{"no repo, server not running", false, nil, false, true},
		{"no repo, server running", false, noRepo, false, true},
		{"pushed", true, pushed, false, true},
		{"remote up to date", true, upToDate, false, true},
		{"only a bundle in the workspace", true, bundled, false, false},
		{"save failed", true, failed, false, false},
		{"repo, server not running", true, nil, false, false},
		{"repo, server not running, --force", true, nil, true, true},
		{"save failed, --force", true, failed, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := purgeAllowed(tt.haveRepo, tt.saved, tt.force); (err == nil) != tt.ok {
				t.Errorf("purgeAllowed = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
