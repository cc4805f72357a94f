# Included by the top-level Makefile. Regenerates the committed eBPF object
# and its Go bindings (ebpf/agentwatch_bpfel.{go,o}); CI can run
# `make generate && git diff --exit-code` where clang is installed.
BPF2GO_CC ?= clang-19
BPF2GO_STRIP ?= llvm-strip-19

.PHONY: generate
generate:
	BPF2GO_CC=$(BPF2GO_CC) BPF2GO_STRIP=$(BPF2GO_STRIP) go generate ./ebpf/...

.PHONY: bpf-headers
bpf-headers:
	./scripts/update-bpf-headers.sh
