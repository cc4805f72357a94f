// Package ebpf loads agentwatch's eBPF programs (bpf/, compiled by bpf2go),
// filters them in the kernel to one run's cgroup, reads the ring buffer and
// decodes records into events. It is the only package that imports
// cilium/ebpf. It observes only: no spans, no policy.
package ebpf

import (
	"errors"

	"github.com/agentwatch/agentwatch/event"
)

// Config selects what the sensor watches.
type Config struct {
	CgroupID    uint64 // cgroup v2 id of the run's cgroup (inode number of its directory)
	CgroupLevel int    // its depth below the cgroup v2 root (root = 0)
	// Emit receives every decoded event, in ring-buffer order, from the
	// reader goroutine.
	Emit func(event.Event)
}

// Sensor is a loaded, attached set of programs.
type Sensor struct{}

// Start loads and attaches the programs and starts reading.
func Start(cfg Config) (*Sensor, error) { return nil, errors.New("not implemented") }

// Dropped returns how many records the kernel could not queue so far.
func (s *Sensor) Dropped() uint64 { return 0 }

// Close drains what is left in the ring buffer, detaches and frees
// everything.
func (s *Sensor) Close() error { return nil }

// Check loads every program through the verifier without attaching; doctor
// uses it to say whether the sensor will run here.
func Check() error { return errors.New("not implemented") }
