package ebpf

// The compiled object and its Go bindings are committed, so building and
// testing need no clang; `make generate` (bpf/generate.mk) refreshes them.
//go:generate go tool bpf2go -tags linux -target bpfel -type rec_hdr -type fork_rec -type exit_rec -type exec_rec -type env_rec -type file_rec -type net_rec -type unix_rec -type uring_rec agentwatch ../bpf/agentwatch.c -- -I../bpf/headers -O2 -g -Wall
//go:generate go tool bpf2go -tags linux -target bpfel -type nw_rec -type allow_key -type allow_val -type cidr_key -type self_key -type orig_val -type splice_key netwatch ../bpf/netwatch.c -- -I../bpf/headers -O2 -g -Wall
