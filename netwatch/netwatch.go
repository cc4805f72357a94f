// Package netwatch owns the network side of a run: today the connection
// events come from the eBPF sensor's connect/sendto programs; the DNS proxy,
// the cgroup sock_addr enforcement and the SNI/Host splice checks of the
// policy issue land here. It observes and enforces; it never builds spans.
package netwatch
