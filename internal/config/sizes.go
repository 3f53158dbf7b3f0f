package config

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// A Size is a named set of resources a server may be given with
// `spinbook up --size NAME`, from the top-level key sizes:
//
//	sizes:
//	  small: {cpus: 2, memory: 8GiB}
//	  gpu:   {cpus: 8, memory: 64GiB, gpus: 1, shm: 16GiB}
//
// The docker backend maps them to the container's CPU and memory limits,
// NVIDIA GPU requests and /dev/shm size. A key left out means no limit.
type Size struct {
	// CPUs is how many CPUs the server may use, such as 4 or 0.5.
	CPUs string `yaml:"cpus"`
	// Memory is the most memory the server may use, with a unit: 512MiB,
	// 8GiB (binary units B, KiB, MiB, GiB, TiB).
	Memory string `yaml:"memory"`
	// GPUs is how many GPUs the server gets, or "all".
	GPUs string `yaml:"gpus"`
	// Shm is the size of /dev/shm (PyTorch data loaders want several
	// GiB), with a unit like Memory.
	Shm string `yaml:"shm"`
	// InstanceType is the EC2 instance type a server of this size runs on
	// (backend aws; required there), such as g5.2xlarge.
	InstanceType string `yaml:"instance_type"`
	// RootVolumeGiB is the size of the instance's root volume in GiB
	// (backend aws), which holds the image and the workspace. Default: 100.
	RootVolumeGiB string `yaml:"root_volume_gib"`
	// PricePerHour is what a server of this size costs, in USD per hour,
	// for the estimate `spinbook status` and `ls` show (such as 1.21).
	// Default on aws: the instance type's on-demand price (package cost).
	PricePerHour string `yaml:"price_per_hour"`
	// Spot runs servers of this size on EC2 spot capacity (backend aws):
	// true (spot only: `up` fails when AWS has none), prefer (spot, else
	// on-demand with a message when AWS has no spot capacity), or false
	// (default: on-demand). AWS may take a spot server back with two
	// minutes' notice; the agent then saves the work and stops Jupyter.
	Spot string `yaml:"spot"`
	// SpotPrice is what a spot server of this size costs, in USD per
	// hour, for the estimate `spinbook status` and `ls` show. Default: the
	// on-demand price (price_per_hour, or the instance type's) less
	// cost.AWSSpotDiscount. Spot prices change by zone and hour: this is
	// an estimate, not what AWS bills.
	SpotPrice string `yaml:"spot_price"`
	// Idle overrides the top-level idle keys for servers of this size.
	Idle Idle `yaml:"idle"`
	// Storage is the size of the workspace volume (backend kubernetes:
	// its claim; backend aws: its EBS volume, whole GiB), with a unit like
	// Memory. Default: kubernetes.workspace_size, aws.workspace_size.
	Storage string `yaml:"storage"`
	// NodeSelector and Tolerations place the server's pod (backend
	// kubernetes), such as on GPU nodes.
	NodeSelector map[string]string `yaml:"node_selector"`
	Tolerations  []Toleration      `yaml:"tolerations"`

	// The fields above parsed; filled by Validate. GPUCount is -1 for all.
	NanoCPUs     int64 `yaml:"-"`
	MemoryBytes  int64 `yaml:"-"`
	GPUCount     int   `yaml:"-"`
	ShmBytes     int64 `yaml:"-"`
	RootVolume   int   `yaml:"-"` // GiB; 0 when not set
	StorageBytes int64 `yaml:"-"` // 0 when not set

	// Price is PricePerHour parsed; filled by Validate.
	Price float64 `yaml:"-"`
	// SpotMode is Spot parsed, SpotPriceUSD SpotPrice (0 when not set);
	// filled by Validate.
	SpotMode     SpotMode `yaml:"-"`
	SpotPriceUSD float64  `yaml:"-"`
}

// SizeNames returns the names of the configured sizes, sorted.
func (c *Config) SizeNames() []string {
	return slices.Sorted(maps.Keys(c.Sizes))
}

// LookupSize returns the size called name, or an error that lists the
// valid names.
func (c *Config) LookupSize(name string) (Size, error) {
	if s, ok := c.Sizes[name]; ok {
		return s, nil
	}
	if len(c.Sizes) == 0 {
		return Size{}, fmt.Errorf("unknown size %q: the configuration defines no sizes (add them under sizes:)", name)
	}
	return Size{}, fmt.Errorf("unknown size %q (valid: %s)", name, strings.Join(c.SizeNames(), ", "))
}

func (v *validation) sizes() {
	for _, name := range v.c.SizeNames() {
		s := v.c.Sizes[name]
		p := "sizes." + name
		if err := ValidateUser(name); err != nil {
			v.problemf(p, "%q is not a size name: use lowercase letters, digits and -", name)
		}
		if s.CPUs != "" {
			f, err := strconv.ParseFloat(s.CPUs, 64)
			if err != nil || f <= 0 || f > 4096 || math.IsNaN(f) {
				v.problemf(p+".cpus", "%q is not a number of CPUs (examples: 4, 0.5)", s.CPUs)
			} else {
				s.NanoCPUs = int64(math.Round(f * 1e9))
			}
		}
		if s.Memory != "" {
			n, msg := parseBytes(s.Memory)
			if msg != "" {
				v.problemf(p+".memory", "%q: %s", s.Memory, msg)
			} else if n < 64<<20 {
				v.problemf(p+".memory", "%q is too little to run Jupyter; give at least 64MiB", s.Memory)
			}
			s.MemoryBytes = n
		}
		switch g := s.GPUs; g {
		case "", "0":
		case "all":
			s.GPUCount = -1
		default:
			n, err := strconv.Atoi(g)
			if err != nil || n < 0 || n > 64 {
				v.problemf(p+".gpus", "%q is not a number of GPUs or \"all\"", g)
			}
			s.GPUCount = n
		}
		if s.Shm != "" {
			n, msg := parseBytes(s.Shm)
			if msg != "" {
				v.problemf(p+".shm", "%q: %s", s.Shm, msg)
			}
			s.ShmBytes = n
		}
		v.sizeAWS(p, &s)
		v.sizeSpot(p, &s)
		v.sizeKubernetes(p, &s)
		v.c.Sizes[name] = s
	}
}

var byteUnits = []struct {
	suffix string
	shift  uint
}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

// parseBytes parses an amount of memory with a binary unit, such as 8GiB or
// 1.5GiB, or says what is wrong.
func parseBytes(s string) (int64, string) {
	const form = "want a number and a unit, such as 512MiB or 8GiB (units: B, KiB, MiB, GiB, TiB)"
	for _, u := range byteUnits {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return 0, form
		}
		n := f * float64(int64(1)<<u.shift)
		if n > float64(1<<50) {
			return 0, "more than a PiB; check the unit"
		}
		return int64(n), ""
	}
	if num, ok := strings.CutSuffix(strings.ToUpper(s), "G"); ok {
		return 0, fmt.Sprintf("%s; did you mean %sGiB?", form, num)
	}
	if num, ok := strings.CutSuffix(strings.ToUpper(s), "M"); ok {
		return 0, fmt.Sprintf("%s; did you mean %sMiB?", form, num)
	}
	return 0, form
}
