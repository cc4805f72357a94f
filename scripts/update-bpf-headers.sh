#!/bin/sh
# SPDX-License-Identifier: MIT
# Refreshes the vendored BPF headers under bpf/headers/:
#   vmlinux.h  - BTF of the running kernel (CO-RE relocates field offsets at
#                load time, so one vmlinux.h serves other kernels too)
#   bpf_*.h    - libbpf's BPF-side helpers, from the libbpf-dev package
# Run it on a machine with bpftool and libbpf-dev installed, then commit.
set -eu

cd "$(dirname "$0")/.."
dst=bpf/headers
libbpf_include=${LIBBPF_INCLUDE:-/usr/include/bpf}
btf=${VMLINUX_BTF:-/sys/kernel/btf/vmlinux}

mkdir -p "$dst"
bpftool btf dump file "$btf" format c >"$dst/vmlinux.h.tmp"
mv "$dst/vmlinux.h.tmp" "$dst/vmlinux.h"

for h in bpf_helpers.h bpf_helper_defs.h bpf_tracing.h bpf_core_read.h bpf_endian.h; do
	cp "$libbpf_include/$h" "$dst/$h"
done

if command -v dpkg-query >/dev/null 2>&1; then
	v=$(dpkg-query -W -f '${Version}' libbpf-dev 2>/dev/null || true)
	echo "libbpf-dev ${v:-unknown}, kernel $(uname -r)" >"$dst/VERSION"
fi
