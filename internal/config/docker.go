package config

import (
	"net/netip"
	"strings"
	"time"
)

// Docker configures backend docker: each server is a container on a Docker
// Engine (the one $DOCKER_HOST names, else the local socket), running the
// image given by the top-level key image, with spinbook's agent copied in.
type Docker struct {
	// PublishHost is the host address the front-door and health ports are
	// published on, such as 127.0.0.1, or 0.0.0.0 for every interface (then
	// list the client networks in access.allow). The Engine picks free host
	// ports. Default: 127.0.0.1.
	PublishHost string `yaml:"publish_host"`

	// Network is the Docker network servers join; `spinbook site up`
	// creates it (and `spinbook up` does when it is missing). Default:
	// spinbook.
	Network string `yaml:"network"`

	// StopGrace is how long `spinbook down` gives a server to save the
	// workspace and stop its kernels before the Engine kills it, as a Go
	// duration (90s, 2m). Default: 60s.
	StopGrace string `yaml:"stop_grace"`

	// StopGraceDuration is StopGrace parsed; filled by Validate.
	StopGraceDuration time.Duration `yaml:"-"`
}

// Defaults of the docker keys.
const (
	DefaultImage       = "quay.io/jupyter/scipy-notebook:latest"
	defaultPublishHost = "127.0.0.1"
	defaultNetwork     = "spinbook"
	defaultStopGrace   = 60 * time.Second
)

func (v *validation) docker() {
	c := v.c
	if c.Image == "" {
		c.Image = DefaultImage
	} else if strings.ContainsAny(c.Image, " \t\n") || strings.HasPrefix(c.Image, "-") {
		v.problemf("image", "%q is not an image reference (example: %s)", c.Image, DefaultImage)
	}

	d := &c.Docker
	if d.PublishHost == "" {
		d.PublishHost = defaultPublishHost
	}
	if !isIP(d.PublishHost) {
		v.problemf("docker.publish_host", "%q is not an IP address (examples: 127.0.0.1, or 0.0.0.0 for every interface)", d.PublishHost)
	}
	if d.Network == "" {
		d.Network = defaultNetwork
	} else if strings.ContainsAny(d.Network, " \t\n/") {
		v.problemf("docker.network", "%q is not a network name", d.Network)
	}
	d.StopGraceDuration = defaultStopGrace
	if d.StopGrace == "" {
		d.StopGrace = "60s"
	} else {
		g, err := time.ParseDuration(d.StopGrace)
		switch {
		case err != nil:
			v.problemf("docker.stop_grace", "%q is not a duration (examples: 60s, 2m)", d.StopGrace)
		case g < time.Second:
			v.problemf("docker.stop_grace", "%q is too short to save the workspace; give at least 1s", d.StopGrace)
		default:
			d.StopGraceDuration = g
		}
	}
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}
