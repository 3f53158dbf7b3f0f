package secret

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestScrub(t *testing.T) {
	env := []string{
		"PATH=/usr/bin",
		"DW_PASSWORD=" + canary,
		"DATABASE_URL=postgresql://nb:" + canary + "@dw/analytics",
		"HOME=/root",
		"SHORT=ab",
		"PIN=123",
		"EMPTY=",
		"NOVALUE",
	}
	got := Scrub(env, []string{canary, "123", ""})
	want := []string{"PATH=/usr/bin", "HOME=/root", "SHORT=ab", "EMPTY=", "NOVALUE"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Scrub (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"DW_PASSWORD", "DATABASE_URL", "PIN"}, Holders(env, []string{canary, "123"})); diff != "" {
		t.Errorf("Holders (-want +got):\n%s", diff)
	}
	if got := Scrub(env, nil); !slices.Equal(got, env) {
		t.Errorf("Scrub with no secrets changed the environment: %q", got)
	}
}
