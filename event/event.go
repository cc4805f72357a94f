// Package event defines the observations that sensors emit: one Go type per
// kind, each timestamped and tagged with the process (thread-group id) that
// caused it.
//
// Sensors (ebpf, fswatch, netwatch) only construct these values; they never
// build spans or decide policy. The recorder is the only consumer that turns
// them into a trace.
package event

import (
	"net/netip"
	"strings"
	"time"
)

// Source names the sensor that produced an event.
type Source uint8

const (
	SourceEBPF Source = iota + 1
	SourceFSWatch
	SourceSupervisor
	SourceNetwatch
)

func (s Source) String() string {
	switch s {
	case SourceEBPF:
		return "ebpf"
	case SourceFSWatch:
		return "fswatch"
	case SourceSupervisor:
		return "supervisor"
	case SourceNetwatch:
		return "netwatch"
	}
	return "unknown"
}

// Event is implemented by every event type. It is a closed set: the recorder
// switches on the concrete type.
type Event interface {
	// When is the wall-clock time the event happened (kernel time converted
	// by the sensor).
	When() time.Time
	// Process is the thread-group id (user-visible pid) that caused the
	// event, or 0 when unknown (fswatch cannot tell).
	Process() uint32
}

// Header carries what every event has.
type Header struct {
	Time time.Time
	PID  uint32 // thread-group id
}

func (h Header) When() time.Time { return h.Time }
func (h Header) Process() uint32 { return h.PID }

// Fork: a new process (not a thread) was created by PPID.
type Fork struct {
	Header        // PID is the new child
	PPID   uint32 // the forking process
}

// Launched: the supervisor started the run's command; PID is its
// host pid, the root of the process tree. Sensors may report the command's
// first events before this one arrives (it is sent once the start call
// returns); the recorder places them all the same.
type Launched struct {
	Header
}

// Exec: a process replaced its image (execve/execveat succeeded).
type Exec struct {
	Header
	PPID          uint32
	UID           uint32
	GID           uint32
	Filename      string   // as passed to execve, made absolute against Cwd when relative
	Interpreter   string   // a script's interpreter (what /proc/PID/exe points at); empty for a binary
	Argv          []string // possibly truncated, see ArgvTruncated
	ArgvTruncated bool
	Cwd           string
	// The agent's tool-call context, read from the new image's
	// environment at exec time (only these two variables, never any
	// other): TRACEPARENT (Claude Code points it at its tool span) and
	// CODEX_TOOL_CALL_ID. Empty when absent or unreadable.
	TraceParent string
	ToolCallID  string
}

// Exit: the last thread of a process exited.
type Exit struct {
	Header
	Code   int // exit status when exited normally
	Signal int // terminating signal, 0 when exited normally
}

// FileOp is what a process did to a path.
type FileOp uint8

const (
	FileCreate FileOp = iota + 1
	FileWrite         // opened for writing (existing file)
	FileTruncate
	FileDelete
	FileRename
	FileChmod
	FileRead // only for paths the policy asks about (secrets)
	FileMkdir
	FileSymlink     // Path: the new link; NewPath: its target as written (not resolved)
	FileLink        // hard link: Path: the existing file; NewPath: the new name
	FileMknod       // device node or FIFO (mkfifo); Mode holds the file type bits
	FileSetxattr    // Detail: the attribute name
	FileRemovexattr // Detail: the attribute name
	FileUtimes      // utimes/utimensat/futimesat: timestamps set
	FileChown       // chown/fchown/lchown/fchownat: owner or group changed
)

func (o FileOp) String() string {
	switch o {
	case FileCreate:
		return "create"
	case FileWrite:
		return "write"
	case FileTruncate:
		return "truncate"
	case FileDelete:
		return "delete"
	case FileRename:
		return "rename"
	case FileChmod:
		return "chmod"
	case FileRead:
		return "read"
	case FileMkdir:
		return "mkdir"
	case FileSymlink:
		return "symlink"
	case FileLink:
		return "link"
	case FileMknod:
		return "mknod"
	case FileSetxattr:
		return "setxattr"
	case FileRemovexattr:
		return "removexattr"
	case FileUtimes:
		return "utimes"
	case FileChown:
		return "chown"
	}
	return "unknown"
}

// File: a change (or sensitive read) of a path.
type File struct {
	Header
	Source  Source
	Op      FileOp
	Path    string // absolute
	NewPath string // rename target, absolute
	Mode    uint32 // chmod mode / create mode when known
	Errno   int32  // 0 on success; non-zero when the syscall failed (e.g. EROFS, EACCES)
	Detail  string // op-specific: the xattr name for setxattr/removexattr
}

// NetOp distinguishes how a destination was contacted.
type NetOp uint8

const (
	NetConnect NetOp = iota + 1
	NetSendTo
)

func (o NetOp) String() string {
	if o == NetSendTo {
		return "sendto"
	}
	return "connect"
}

// Transport of a connection.
type Transport uint8

const (
	TCP Transport = iota + 1
	UDP
	Unix
	OtherTransport
)

func (t Transport) String() string {
	switch t {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case Unix:
		return "unix"
	}
	return "other"
}

// Connect: a process connected (or first sent) to a destination.
type Connect struct {
	Header
	Source    Source
	Op        NetOp
	Transport Transport
	Addr      netip.AddrPort
	Errno     int32  // connect result when known; EINPROGRESS counts as success
	Name      string // DNS name, when a sensor knows it (netwatch)
	// Unix sockets (Transport Unix): the socket's path, "@name" for an
	// abstract one, and the pid of the process that listens on it (the
	// peer's credentials the kernel recorded at connect), 0 when unknown.
	// Addr is zero for them.
	UnixPath string
	PeerPID  uint32
}

// IOURing: a process set up an io_uring instance (io_uring_setup). Its
// operations bypass the syscall tracepoints the file and network sensors
// hook, so the recorder flags it; in enforce mode the call fails (Errno
// ENOSYS from the run's seccomp filter) and this records the attempt.
type IOURing struct {
	Header
	Entries uint32 // requested submission queue size
	Errno   int32  // 0 on success
}

// Dropped: a sensor lost events (ring buffer full, queue overflow).
type Dropped struct {
	Header
	Source Source
	Count  uint64
}

// Gap: a capability that is missing for this run; it is recorded on the
// root span, never silently skipped.
type Gap struct {
	Header
	Sensor string // e.g. "ebpf", "cgroup", "fswatch"
	Reason string
}

// String is the gap as the record shows it: "sensor: reason".
func (g Gap) String() string {
	if g.Reason == "" {
		return g.Sensor
	}
	return g.Sensor + ": " + g.Reason
}

// ParseGap reads a gap written as its String ("sensor: reason"), as an
// older journal holds them.
func ParseGap(s string) Gap {
	if sensor, reason, ok := strings.Cut(s, ": "); ok {
		return Gap{Sensor: sensor, Reason: reason}
	}
	return Gap{Sensor: s}
}

// Verdict is an enforcer's decision.
type Verdict uint8

const (
	Allow Verdict = iota + 1
	Deny          // blocked (enforce mode)
	Audit         // would have been blocked; allowed because of observe mode
)

func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	case Audit:
		return "audit"
	}
	return "unknown"
}

// DNSQuery: a lookup answered (or refused) by the run's DNS proxy.
type DNSQuery struct {
	Header           // PID when known (0: the proxy cannot tell)
	Name      string // question name, lower-case, without the trailing dot
	QType     string // A, AAAA, TXT, ANY, ...
	Transport Transport
	Client    netip.AddrPort // where the query came from
	Answers   []netip.Addr
	Verdict   Verdict
	Rule      string // the network.allow pattern that matched, or the reason for a deny
	Forwarded bool   // the query reached the upstream resolver
	RCode     string // NOERROR, NXDOMAIN, REFUSED, SERVFAIL
}

// NetDecision: the enforcer decided about a connection or datagram (the
// cgroup sock_addr hooks, or the SNI/Host splice check).
type NetDecision struct {
	Header
	Op        NetOp
	Transport Transport
	Addr      netip.AddrPort // the original destination
	Name      string         // DNS name the address was resolved from, or the SNI / Host seen
	Verdict   Verdict
	Rule      string // the network.allow / allow_cidrs rule that matched, or why it did not
	Check     string // "address" (connect hook), "sni", "host", "dns-redirect"
}

// EnvFiltered: the child's environment was built from the allowlist. Names
// only: a dropped value must never be recorded.
type EnvFiltered struct {
	Header
	Kept    []string
	Dropped []string
	Set     []string // names added or overridden by env.set
}

// ProtectedPath: a files.protect path as the run started: made read-only
// (enforce), watched (observe), or absent (creating it later alerts).
type ProtectedPath struct {
	Header
	Path     string
	Pattern  string
	Existed  bool
	ReadOnly bool
}

// LLMCall: one model API request seen by the run's metering proxy, complete
// (the response ended, failed or was cut off).
type LLMCall struct {
	Header              // PID when known (0: the proxy cannot tell)
	Start     time.Time // request received
	FirstByte time.Time // first response byte (time to first token for streams); zero when none
	End       time.Time // response finished
	Provider  string    // anthropic, openai, ...
	API       string    // messages, chat.completions, responses, count_tokens, ...
	Method    string
	Path      string
	Status    int    // HTTP status the client received; 0 when the upstream never answered
	ErrorType string // error class when the call failed (upstream_unreachable, timeout, http_429, truncated_stream, malformed_response, ...)
	Stream    bool
	// ServerAddress and ServerPort are the upstream the proxy forwarded
	// to (the provider's API host), MaxTokens the output limit the request
	// set (max_tokens, max_completion_tokens or max_output_tokens; 0 none).
	ServerAddress string
	ServerPort    int
	MaxTokens     int64
	// Sampling parameters the request set; each Has* says it was set (a
	// zero is a real value: temperature 0). TopK is Anthropic's.
	Temperature, TopP                         float64
	TopK, Seed                                int64
	HasTemperature, HasTopP, HasTopK, HasSeed bool
	// StopSequences are the request's stop sequences (Anthropic
	// stop_sequences, OpenAI stop): content, so only in full capture,
	// bounded, not redacted (see Prompt).
	StopSequences []string
	// RetryAfter is the upstream's Retry-After (or retry-after-ms), when
	// HasRetryAfter: how long it asked the client to wait.
	RetryAfter    time.Duration
	HasRetryAfter bool
	// Guardrail names a provider refusal or content filter that ended the
	// response: "refusal" (Anthropic stop_reason refusal, an OpenAI
	// refusal), "content_filter" (finish_reason / incomplete reason
	// content_filter); "" none seen.
	Guardrail string

	RequestModel        string
	ResponseModel       string
	ResponseID          string
	FinishReasons       []string
	InputTokens         int64 // all input tokens, cached included (the GenAI convention)
	OutputTokens        int64 // reasoning included
	CacheReadTokens     int64
	CacheCreationTokens int64
	ReasoningTokens     int64
	UsageKnown          bool // the response carried usage

	RequestBytes       int64
	ResponseBytes      int64
	PromptSHA256       string // of the whole request body
	SystemPromptSHA256 string
	// ToolsSHA256 digests the tool definitions offered (names and input
	// schemas, canonical JSON, in no particular order); TemplateSHA256
	// the system prompt and those definitions together: the agent's
	// template, which the conversation's messages do not change.
	ToolsSHA256    string
	TemplateSHA256 string
	ToolsOffered   []string // tool names offered to the model
	ToolCalls      []ToolCall
	// ToolResults are the tool results the request brought back to the
	// model that are new in it (after the model's last output in the
	// conversation), at most MaxToolResults of them; ToolResultCount and
	// ToolErrorCount count all of them and those marked as errors.
	ToolResults     []ToolResult
	ToolResultCount int
	ToolErrorCount  int
	SessionID       string // the agent's session id when it sends one (x-claude-code-session-id)
	TraceParent     string // an inbound traceparent header, when the agent propagates one

	// Content, only in full-capture mode, bounded but NOT redacted: the
	// recorder redacts each text, then cuts it to ContentLimit bytes (the
	// sensor keeps a margin past it so that a secret straddling the limit
	// is still whole for the redactor). Empty otherwise.
	Prompt       string
	Response     string
	ContentLimit int
	// ContentCaptured: the request was metered in full capture (content
	// could be kept); false in metadata mode or past the capture's expiry.
	ContentCaptured bool
}

// MaxToolResults bounds LLMCall.ToolResults.
const MaxToolResults = 64

// ToolResult is a tool's result sent back to the model: the id of the
// tool call it answers (Anthropic tool_use_id, OpenAI tool_call_id or
// call_id) and whether the client marked it an error (Anthropic is_error;
// OpenAI has no such mark).
type ToolResult struct {
	ToolCallID string
	IsError    bool
	// ContentSHA256 digests the result's content as the request sent it:
	// the text itself when it is a string, else its JSON (compacted);
	// empty when the result had no content.
	ContentSHA256 string
}

// ToolCall is a tool invocation the model asked for.
type ToolCall struct {
	ID        string
	Name      string
	Arguments string // only in full-capture mode, bounded, not redacted (see LLMCall.Prompt)
	// Digests and a path read from the arguments in every capture mode
	// (no text is kept): ArgumentsSHA256 of the arguments as canonical
	// JSON (keys sorted, no spaces; "{}" for none); CommandSHA256 of the
	// command a shell tool was asked to run (a "command" or "cmd" string,
	// spaces trimmed, or a "command" array of strings joined with NUL, as
	// an argv); FilePath is the "file_path" (or "notebook_path") the call
	// names. Empty when the arguments were not JSON or past
	// MaxToolArguments.
	ArgumentsSHA256 string
	CommandSHA256   string
	FilePath        string
}

// MaxToolArguments bounds the arguments of one tool call the proxy reads
// for ToolCall's digests.
const MaxToolArguments = 1 << 20

// AgentTelemetry: spans and logs the agent exported itself (OTLP) to the
// run's receiver, kept as OTLP protobuf bytes so the recorder can re-parent
// them without this package depending on OTLP types.
type AgentTelemetry struct {
	Header
	Signal string // SignalTraces | SignalLogs | SignalMetrics
	// Payload is a marshalled ExportTraceServiceRequest /
	// ExportLogsServiceRequest / ExportMetricsServiceRequest.
	Payload []byte
	// Logs are the log records of a SignalLogs request, decoded by the
	// receiver (the recorder reads these, not the logs Payload).
	Logs []AgentLogRecord
}

// OutputURL is a pull or merge request URL in the output the supervisor
// relayed from the run to the operator (the PTY, or the pipes it copies):
// what the run printed, found by the supervisor's output scanner. The run
// chooses what it prints, so this is a claim; the recorder judges it
// against the run's repository (recorder/pr.go).
type OutputURL struct {
	Header // PID 0: which process wrote it is not known
	URL    string
}
