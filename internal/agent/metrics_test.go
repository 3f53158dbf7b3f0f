package agent

import (
	"errors"
	"slices"
	"testing"

	"github.com/spinbook/spinbook/internal/gitwork"
)

// TestSaveResult: every save outcome gets one of the fixed result labels.
func TestSaveResult(t *testing.T) {
	tests := []struct {
		name string
		res  gitwork.Result
		err  error
		want string
	}{
		{"pushed", gitwork.Result{PushedTo: "main", Saved: true}, nil, savePushed},
		{"new branch", gitwork.Result{PushedTo: "spinbook/a/x", NewBranch: true, Saved: true}, nil, saveNewBranch},
		{"up to date", gitwork.Result{UpToDate: true, Saved: true}, nil, saveUpToDate},
		{"bundle stored", gitwork.Result{Bundle: "/b", StoredBundle: "s3://m/b", Saved: true}, nil, saveBundleStored},
		{"bundle on the server", gitwork.Result{Bundle: "/b", Saved: true}, nil, saveBundleOnServer},
		{"failed", gitwork.Result{}, errors.New("commit failed"), saveFailed},
		{"not saved", gitwork.Result{Reason: "rejected"}, nil, saveNotSaved},
	}
	for _, tt := range tests {
		got := saveResult(tt.res, tt.err)
		if got != tt.want || !slices.Contains(saveResults, got) {
			t.Errorf("%s: saveResult = %q, want %q (one of %v)", tt.name, got, tt.want, saveResults)
		}
	}
}
