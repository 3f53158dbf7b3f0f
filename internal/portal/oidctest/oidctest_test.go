package oidctest_test

import (
	"crypto/rand"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"

	"github.com/spinbook/spinbook/internal/portal/oidctest"
)

const redirect = "http://127.0.0.1:9/callback" // never fetched

func start(t *testing.T) (*oidctest.Provider, *oidc.Provider, oauth2.Config) {
	t.Helper()
	c := oidctest.Client{ID: "spinbook-portal", Secret: rand.Text(), RedirectURIs: []string{redirect}}
	p := oidctest.Start(t, c)
	op, err := oidc.NewProvider(t.Context(), p.Issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	conf := oauth2.Config{
		ClientID:     c.ID,
		ClientSecret: c.Secret,
		Endpoint:     op.Endpoint(),
		RedirectURL:  redirect,
		Scopes:       []string{oidc.ScopeOpenID, "email", "profile", "groups"},
	}
	return p, op, conf
}

// TestCodeFlowWithPKCE signs each static account in with the
// authorization-code flow and PKCE, as the portal does, and checks the ID
// token (verified by go-oidc against the provider's keys) names the person
// and their groups.
func TestCodeFlowWithPKCE(t *testing.T) {
	p, op, conf := start(t)
	verifier := op.Verifier(&oidc.Config{ClientID: conf.ClientID})

	tests := []struct {
		account string
		email   string
		groups  []string
	}{
		{"alice", "alice@example.com", []string{"data", "data-admins"}},
		{"bob", "bob@example.com", []string{"data"}},
		{"carol", "carol@example.com", []string{"other"}},
	}
	for _, tt := range tests {
		t.Run(tt.account, func(t *testing.T) {
			state, nonce, pkce := rand.Text(), rand.Text(), oauth2.GenerateVerifier()
			authURL := conf.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(pkce))
			back, err := p.Login(t.Context(), authURL, tt.account, p.Password(t, tt.account))
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			if got := back.Query().Get("state"); got != state {
				t.Fatalf("state = %q, want %q (redirect %s)", got, state, back)
			}
			code := back.Query().Get("code")
			if code == "" {
				t.Fatalf("no code in the redirect %s", back)
			}
			tok, err := conf.Exchange(t.Context(), code, oauth2.VerifierOption(pkce))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			raw, ok := tok.Extra("id_token").(string)
			if !ok {
				t.Fatal("no id_token in the token response")
			}
			idt, err := verifier.Verify(t.Context(), raw)
			if err != nil {
				t.Fatalf("verify ID token: %v", err)
			}
			if idt.Nonce != nonce {
				t.Errorf("nonce = %q, want %q", idt.Nonce, nonce)
			}
			var claims struct {
				Email             string   `json:"email"`
				PreferredUsername string   `json:"preferred_username"`
				Groups            []string `json:"groups"`
			}
			if err := idt.Claims(&claims); err != nil {
				t.Fatal(err)
			}
			if claims.Email != tt.email || claims.PreferredUsername != tt.account || idt.Subject != tt.account {
				t.Errorf("claims = %+v, sub %q; want %s, %s", claims, idt.Subject, tt.email, tt.account)
			}
			if diff := cmp.Diff(tt.groups, claims.Groups); diff != "" {
				t.Errorf("groups (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRefusals: a wrong password, an unknown account, a request without
// PKCE and a redirect URI that was not registered are all turned down.
func TestRefusals(t *testing.T) {
	p, _, conf := start(t)

	t.Run("wrong password", func(t *testing.T) {
		authURL := conf.AuthCodeURL(rand.Text(), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		if _, err := p.Login(t.Context(), authURL, "alice", p.Password(t, "bob")); !errors.Is(err, oidctest.ErrRejected) {
			t.Fatalf("login with bob's password as alice: %v, want ErrRejected", err)
		}
	})
	t.Run("unknown account", func(t *testing.T) {
		authURL := conf.AuthCodeURL(rand.Text(), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		if _, err := p.Login(t.Context(), authURL, "mallory", "x"); !errors.Is(err, oidctest.ErrRejected) {
			t.Fatalf("login as mallory: %v, want ErrRejected", err)
		}
	})
	t.Run("no PKCE", func(t *testing.T) {
		back, err := p.Login(t.Context(), conf.AuthCodeURL(rand.Text()), "alice", p.Password(t, "alice"))
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		if back.Query().Get("code") != "" || !strings.Contains(back.Query().Get("error_description"), "PKCE") {
			t.Fatalf("a request without PKCE came back %s, want an error about PKCE", back)
		}
	})
	t.Run("unregistered redirect", func(t *testing.T) {
		other := conf
		other.RedirectURL = "http://127.0.0.1:9/elsewhere"
		_, err := p.Login(t.Context(), other.AuthCodeURL(rand.Text(), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "alice", p.Password(t, "alice"))
		if err == nil || !strings.Contains(err.Error(), http.StatusText(http.StatusBadRequest)) {
			t.Fatalf("an unregistered redirect URI: %v, want the provider's 400", err)
		}
	})
}

// TestSecretsStayOutOfArgv: the client secret and the accounts' passwords
// reach the provider in its environment, never in any process's argv.
func TestSecretsStayOutOfArgv(t *testing.T) {
	p, _, conf := start(t)
	secrets := []string{conf.ClientSecret}
	for _, a := range p.Accounts {
		secrets = append(secrets, a.Password)
	}
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil || len(procs) == 0 {
		t.Fatalf("no /proc to look in: %v", err)
	}
	sawNode := false
	for _, f := range procs {
		cmdline, err := os.ReadFile(f)
		if err != nil {
			continue // gone meanwhile
		}
		if strings.Contains(string(cmdline), "run.mjs") {
			sawNode = true
		}
		for _, s := range secrets {
			if strings.Contains(string(cmdline), s) {
				t.Errorf("%s holds a secret", f)
			}
		}
	}
	if !sawNode {
		t.Fatal("found no provider process (node run.mjs) to check")
	}
}
