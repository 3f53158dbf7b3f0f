//go:build !linux

package unixuser

import "errors"

// Become needs Linux (the containers the agent runs in).
func Become(User) error { return errors.New("become the image's user: needs Linux") }
