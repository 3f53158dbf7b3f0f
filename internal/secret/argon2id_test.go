package secret

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

// correctHorse was made once by HashPassword("correct horse") and is kept
// so that a change to the format or the parameters shows up here.
const correctHorse = "$argon2id$v=19$m=65536,t=3,p=2$ihU4ZRXtPa7Lm1BvveACZg$glF1PdrNL7TDnXzpObHk5yAnB8gK5yONk6oI/lo9pRM"

func TestHashPasswordRoundTrip(t *testing.T) {
	s, err := HashPassword("hunter2")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Errorf("HashPassword = %q, want the $argon2id$v=19$m=65536,t=3,p=2$ prefix", s)
	}
	h, err := ParsePasswordHash(s)
	if err != nil {
		t.Fatalf("ParsePasswordHash(HashPassword(...)): %v", err)
	}
	if got := h.String(); got != s {
		t.Errorf("String() = %q, want %q", got, s)
	}
	if len(h.salt) != 16 || len(h.key) != 32 {
		t.Errorf("salt %d bytes, key %d bytes; want 16 and 32", len(h.salt), len(h.key))
	}
	if !h.Verify("hunter2") {
		t.Error("Verify(right password) = false")
	}
	for _, wrong := range []string{"", "hunter3", "Hunter2", "hunter2 ", "hunter"} {
		if h.Verify(wrong) {
			t.Errorf("Verify(%q) = true", wrong)
		}
	}
}

func TestHashPasswordSalts(t *testing.T) {
	a, err := HashPassword("same")
	if err != nil {
		t.Fatal(err)
	}
	b, err := HashPassword("same")
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Errorf("two hashes of one password are equal (%s): the salt is not random", a)
	}
}

func TestHashPasswordEmpty(t *testing.T) {
	if s, err := HashPassword(""); err == nil {
		t.Errorf("HashPassword(\"\") = %q, want an error", s)
	}
}

func TestCommittedHash(t *testing.T) {
	h, err := ParsePasswordHash(correctHorse)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Verify("correct horse") {
		t.Error(`Verify("correct horse") = false`)
	}
	if h.Verify("correct horse battery staple") {
		t.Error("Verify(other password) = true")
	}
	if got := h.String(); got != correctHorse {
		t.Errorf("String() = %q, want %q", got, correctHorse)
	}
}

// TestKnownVector checks against the argon2id test vector of the reference
// implementation (phc-winner-argon2: "password", "somesalt", t=2, m=64 MiB,
// p=1), so that the hash is argon2id and not just self-consistent.
func TestKnownVector(t *testing.T) {
	const vector = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	h, err := ParsePasswordHash(vector)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Verify("password") {
		t.Error(`reference vector: Verify("password") = false`)
	}

	// The same through the library directly, for a hash this package made.
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte("correct horse"), salt, 3, 64*1024, 2, 32)
	s := "$argon2id$v=19$m=65536,t=3,p=2$" + base64.RawStdEncoding.EncodeToString(salt) + "$" + base64.RawStdEncoding.EncodeToString(key)
	h, err = ParsePasswordHash(s)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Verify("correct horse") {
		t.Error(`argon2.IDKey hash: Verify("correct horse") = false`)
	}
}

func TestTamperedHash(t *testing.T) {
	fields := strings.Split(correctHorse, "$")
	flip := func(b64 string) string {
		b, err := base64.RawStdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatal(err)
		}
		b[0] ^= 1
		return base64.RawStdEncoding.EncodeToString(b)
	}
	tests := []struct {
		name string
		hash string
	}{
		{"key", strings.Join([]string{"", "argon2id", "v=19", fields[3], fields[4], flip(fields[5])}, "$")},
		{"salt", strings.Join([]string{"", "argon2id", "v=19", fields[3], flip(fields[4]), fields[5]}, "$")},
		{"time", strings.Join([]string{"", "argon2id", "v=19", "m=65536,t=2,p=2", fields[4], fields[5]}, "$")},
		{"threads", strings.Join([]string{"", "argon2id", "v=19", "m=65536,t=3,p=1", fields[4], fields[5]}, "$")},
		{"memory", strings.Join([]string{"", "argon2id", "v=19", "m=32768,t=3,p=2", fields[4], fields[5]}, "$")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParsePasswordHash(tt.hash)
			if err != nil {
				t.Fatal(err)
			}
			if h.Verify("correct horse") {
				t.Error("Verify(right password) = true for a tampered hash")
			}
		})
	}
}

func TestParsePasswordHashMalformed(t *testing.T) {
	const (
		salt = "ihU4ZRXtPa7Lm1BvveACZg"
		key  = "glF1PdrNL7TDnXzpObHk5yAnB8gK5yONk6oI/lo9pRM"
	)
	tests := []struct {
		name string
		hash string
		want string // part of the error
	}{
		{"empty", "", "want the form"},
		{"plain password", "correct horse", "want the form"},
		{"no leading $", "argon2id$v=19$m=65536,t=3,p=2$" + salt + "$" + key, "want the form"},
		{"argon2i", "$argon2i$v=19$m=65536,t=3,p=2$" + salt + "$" + key, `algorithm "argon2i" is not supported`},
		{"argon2d", "$argon2d$v=19$m=65536,t=3,p=2$" + salt + "$" + key, `algorithm "argon2d" is not supported`},
		{"bcrypt", "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", `algorithm "2b" is not supported`},
		{"v=18", "$argon2id$v=18$m=65536,t=3,p=2$" + salt + "$" + key, "version \"v=18\" is not supported"},
		{"no version", "$argon2id$m=65536,t=3,p=2$" + salt + "$" + key, "found 4"},
		{"missing hash", "$argon2id$v=19$m=65536,t=3,p=2$" + salt, "found 4"},
		{"missing salt and hash", "$argon2id$v=19$m=65536,t=3,p=2", "found 3"},
		{"trailing field", correctHorse + "$x", "found 6"},
		{"two params", "$argon2id$v=19$m=65536,t=3$" + salt + "$" + key, "want parameters"},
		{"params out of order", "$argon2id$v=19$t=3,m=65536,p=2$" + salt + "$" + key, "in that order"},
		{"param not a number", "$argon2id$v=19$m=64k,t=3,p=2$" + salt + "$" + key, `m="64k" is not a decimal number`},
		{"param with sign", "$argon2id$v=19$m=+65536,t=3,p=2$" + salt + "$" + key, "not a decimal number"},
		{"param leading zero", "$argon2id$v=19$m=065536,t=3,p=2$" + salt + "$" + key, "not a decimal number"},
		{"param overflow", "$argon2id$v=19$m=99999999999,t=3,p=2$" + salt + "$" + key, "not a decimal number"},
		{"huge memory", "$argon2id$v=19$m=4194304,t=3,p=2$" + salt + "$" + key, "m=4194304 is outside 1..1048576"},
		{"huge time", "$argon2id$v=19$m=65536,t=1000,p=2$" + salt + "$" + key, "t=1000 is outside 1..20"},
		{"huge threads", "$argon2id$v=19$m=65536,t=3,p=255$" + salt + "$" + key, "p=255 is outside 1..16"},
		{"zero time", "$argon2id$v=19$m=65536,t=0,p=2$" + salt + "$" + key, "t=0 is outside"},
		{"zero threads", "$argon2id$v=19$m=65536,t=3,p=0$" + salt + "$" + key, "p=0 is outside"},
		{"memory below 8 per thread", "$argon2id$v=19$m=64,t=3,p=16$" + salt + "$" + key, "below 8 KiB per thread"},
		{"salt bad base64", "$argon2id$v=19$m=65536,t=3,p=2$not*base64$" + key, "salt is not unpadded standard base64"},
		{"salt padded", "$argon2id$v=19$m=65536,t=3,p=2$" + salt + "==$" + key, "salt is not unpadded standard base64"},
		{"hash url alphabet", "$argon2id$v=19$m=65536,t=3,p=2$" + salt + "$" + strings.ReplaceAll(key, "/", "_"), "hash is not unpadded standard base64"},
		{"salt too short", "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$" + key, "salt is 4 bytes long"},
		{"hash too short", "$argon2id$v=19$m=65536,t=3,p=2$" + salt + "$aGFzaA", "hash is 4 bytes long"},
		{"hash empty", "$argon2id$v=19$m=65536,t=3,p=2$" + salt + "$", "hash is 0 bytes long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParsePasswordHash(tt.hash)
			if err == nil {
				t.Fatalf("ParsePasswordHash(%q) = %v, want an error", tt.hash, h)
			}
			if !errors.Is(err, ErrInvalidHash) {
				t.Errorf("error %q does not wrap ErrInvalidHash", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if len(tt.hash) > 20 && strings.Contains(err.Error(), tt.hash) {
				t.Errorf("error %q contains the whole hash", err)
			}
			for _, part := range []string{salt, key} {
				if strings.Contains(err.Error(), part) {
					t.Errorf("error %q contains a salt or key", err)
				}
			}
		})
	}
}

func TestParsePasswordHashLongField(t *testing.T) {
	long := "$" + strings.Repeat("x", 500) + "$v=19$m=65536,t=3,p=2$a$b"
	_, err := ParsePasswordHash(long)
	if err == nil {
		t.Fatal("want an error")
	}
	if len(err.Error()) > 100 {
		t.Errorf("error is %d bytes long, want the field cut short: %q", len(err.Error()), err)
	}
}

func TestVerifyNil(t *testing.T) {
	var h *PasswordHash
	if h.Verify("") {
		t.Error("nil hash verified a password")
	}
}

// TestHashGeneratedPassword: a generated password's hash is argon2id in
// the usual format, with the light parameters, and verifies as any other;
// a person's password (too short to be a generated one) is refused.
func TestHashGeneratedPassword(t *testing.T) {
	const pw = "k3mp-x9tq-2hvd-wa7s-njfe"
	s, err := HashGeneratedPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "$argon2id$v=19$m=8192,t=1,p=1$") {
		t.Errorf("hash %q: want argon2id with m=8192,t=1,p=1", s)
	}
	h, err := ParsePasswordHash(s)
	if err != nil || !h.Verify(pw) || h.Verify(pw+"x") {
		t.Errorf("the hash does not verify the password alone (%v)", err)
	}
	if _, err := HashGeneratedPassword("hunter2"); err == nil {
		t.Error("a short password was hashed with the generated parameters")
	}
}
