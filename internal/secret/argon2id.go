// Package secret handles spinbook's secrets one way: references such as
// ${env:NAME} and ${file:PATH} in the config, resolved as late as possible;
// a Redactor that every log and error path uses; and the argon2id hashes of
// login passwords.
package secret

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Parameters of the hashes HashPassword makes: RFC 9106's second
// recommended option (64 MiB, 3 passes) with 2 lanes.
const (
	hashMemory  = 64 * 1024 // KiB
	hashTime    = 3
	hashThreads = 2
	saltLen     = 16
	keyLen      = 32
)

// Limits ParsePasswordHash enforces, so that a hash in a config file cannot
// make each login attempt cost gigabytes or minutes.
const (
	maxMemory  = 1024 * 1024 // KiB, 1 GiB
	maxTime    = 20
	maxThreads = 16
	minSalt    = 8
	maxSalt    = 64
	minKey     = 16
	maxKey     = 64
)

// ErrInvalidHash is wrapped by every error ParsePasswordHash returns.
var ErrInvalidHash = errors.New("invalid password hash")

// A PasswordHash is a parsed argon2id password hash.
type PasswordHash struct {
	memory  uint32 // KiB
	time    uint32 // passes
	threads uint8  // lanes
	salt    []byte
	key     []byte
}

// HashPassword returns the argon2id hash of password in PHC string format,
// $argon2id$v=19$m=65536,t=3,p=2$SALT$KEY, with a random 16-byte salt and a
// 32-byte key, both in unpadded standard base64. An empty password is an
// error.
func HashPassword(password string) (string, error) {
	if password == "" {
		return "", errors.New("hash password: the password is empty")
	}
	return hashWith(password, hashMemory, hashTime, hashThreads)
}

// hashWith hashes password with a new random salt and the given
// parameters, in PHC string format.
func hashWith(password string, memory, passes uint32, threads uint8) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	h := &PasswordHash{
		memory:  memory,
		time:    passes,
		threads: threads,
		salt:    salt,
		key:     argon2.IDKey([]byte(password), salt, passes, memory, threads, keyLen),
	}
	return h.String(), nil
}

// Parameters of the hashes HashGeneratedPassword makes: one pass over
// 8 MiB in one lane.
const (
	generatedMemory  = 8 * 1024 // KiB
	generatedTime    = 1
	generatedThreads = 1
)

// HashGeneratedPassword hashes a password spinbook generated itself (about
// 99 random bits, see the command line's generatePassword) with far
// lighter parameters than HashPassword, in the same format. A memory-hard
// hash is there to slow an offline search of the few passwords people
// choose; no search reaches 2^99 guesses at any cost per guess, so for a
// generated password it would only cost each up and each login (64 MiB
// and two cores for a fifth of a second, here while the Engine starts the
// container). Never use it for a password a person chose.
func HashGeneratedPassword(password string) (string, error) {
	if len(password) < 20 {
		return "", errors.New("hash generated password: too short to be one spinbook generated")
	}
	return hashWith(password, generatedMemory, generatedTime, generatedThreads)
}

// ParsePasswordHash parses an argon2id hash in PHC string format, as made by
// HashPassword or by other argon2id tools using version 19. It refuses
// parameters no sensible hash uses (memory above 1 GiB, more than 20 passes,
// more than 16 lanes). Its errors wrap ErrInvalidHash and never contain s.
func ParsePasswordHash(s string) (*PasswordHash, error) {
	fields := strings.Split(s, "$")
	if len(fields) < 2 || fields[0] != "" {
		return nil, invalid("want the form $argon2id$v=19$m=...,t=...,p=...$SALT$HASH")
	}
	if fields[1] != "argon2id" {
		return nil, invalid("algorithm %s is not supported (want argon2id)", short(fields[1]))
	}
	if len(fields) != 6 {
		return nil, invalid("want 5 fields separated by $ ($argon2id$v=19$m=...,t=...,p=...$SALT$HASH), found %d", len(fields)-1)
	}
	if fields[2] != "v=19" {
		return nil, invalid("version %s is not supported (want v=19)", short(fields[2]))
	}

	h := new(PasswordHash)
	params := strings.Split(fields[3], ",")
	if len(params) != 3 {
		return nil, invalid("want parameters m=...,t=...,p=... (memory, time, threads)")
	}
	var err error
	if h.memory, err = param(params[0], "m", maxMemory); err != nil {
		return nil, err
	}
	if h.time, err = param(params[1], "t", maxTime); err != nil {
		return nil, err
	}
	threads, err := param(params[2], "p", maxThreads)
	if err != nil {
		return nil, err
	}
	h.threads = uint8(threads)
	if h.memory < 8*threads {
		return nil, invalid("memory m=%d is below 8 KiB per thread (p=%d)", h.memory, threads)
	}

	if h.salt, err = decode(fields[4], "salt", minSalt, maxSalt); err != nil {
		return nil, err
	}
	if h.key, err = decode(fields[5], "hash", minKey, maxKey); err != nil {
		return nil, err
	}
	return h, nil
}

// Verify reports whether password is the one h was made from. The final
// comparison takes constant time; the hashing itself costs what h's
// parameters say. A nil h matches no password.
func (h *PasswordHash) Verify(password string) bool {
	if h == nil {
		return false
	}
	key := argon2.IDKey([]byte(password), h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(key, h.key) == 1
}

// String returns h in PHC string format, the form ParsePasswordHash reads.
func (h *PasswordHash) String() string {
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s",
		h.memory, h.time, h.threads,
		base64.RawStdEncoding.EncodeToString(h.salt),
		base64.RawStdEncoding.EncodeToString(h.key))
}

// param parses "name=N" with 1 <= N <= limit, N in canonical decimal.
func param(s, name string, limit uint32) (uint32, error) {
	v, ok := strings.CutPrefix(s, name+"=")
	if !ok {
		return 0, invalid("want parameters m=...,t=...,p=... in that order; found %s where %s= belongs", short(s), name)
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || strconv.FormatUint(n, 10) != v {
		return 0, invalid("parameter %s=%s is not a decimal number", name, short(v))
	}
	if n < 1 || n > uint64(limit) {
		return 0, invalid("parameter %s=%d is outside 1..%d", name, n, limit)
	}
	return uint32(n), nil
}

// decode decodes the unpadded standard base64 field called what and checks
// that its length is within lo..hi bytes.
func decode(s, what string, lo, hi int) ([]byte, error) {
	b, err := base64.RawStdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, invalid("%s is not unpadded standard base64", what)
	}
	if len(b) < lo || len(b) > hi {
		return nil, invalid("%s is %d bytes long (want %d to %d)", what, len(b), lo, hi)
	}
	return b, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidHash}, args...)...)
}

// short quotes a field of a hash for an error message, cut to a few
// characters so that an error never carries a whole hash.
func short(s string) string {
	const max = 12
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
