package supervisor

import "github.com/agentwatch/agentwatch/ebpf"

// CheckSensors loads the run's eBPF programs through the verifier and
// unloads them, for `agentwatch doctor`: sensor (the process, file and
// connection programs) is nil when a run would have them, enforce (the
// cgroup connect/sendmsg hooks) when enforce mode could start. The CLI
// asks the supervisor, which owns the sensors, not the sensors themselves.
func CheckSensors() (sensor, enforce error) { return ebpf.Check(), ebpf.CheckNet() }
