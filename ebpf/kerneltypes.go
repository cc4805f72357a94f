package ebpf

import (
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// Decoding the kernel's BTF (/sys/kernel/btf/vmlinux, several MiB) for
// CO-RE relocation is the largest CPU cost of loading a collection, and a
// run loads two (the sensor and network enforcement). Without a shared
// cache each load decodes it again; with one, the first load decodes and
// the second reuses. PreloadKernelTypes lets the supervisor start that work
// before it needs the programs; ReleaseKernelTypes drops the decoded types
// once both are loaded so they do not stay in the supervisor's heap.
var (
	kernelTypesMu sync.Mutex
	kernelTypes   *btf.Cache
)

func loadOptions() *ebpf.CollectionOptions {
	kernelTypesMu.Lock()
	defer kernelTypesMu.Unlock()
	if kernelTypes == nil {
		kernelTypes = btf.NewCache()
	}
	return &ebpf.CollectionOptions{Cache: kernelTypes}
}

// PreloadKernelTypes starts decoding the kernel's BTF into the shared
// cache in the background and returns at once. Loads that start meanwhile
// wait for the same decode; its error is left for them to report.
func PreloadKernelTypes() {
	c := loadOptions().Cache
	go c.Kernel()
}

// ReleaseKernelTypes forgets the shared cache; a later load decodes again.
func ReleaseKernelTypes() {
	kernelTypesMu.Lock()
	defer kernelTypesMu.Unlock()
	kernelTypes = nil
}
