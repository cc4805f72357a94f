package telemetry

import (
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
)

// SemconvSchemaURL is the schema of the one pinned semconv package. v1.41.0
// is the last that carries gen_ai.* together with process, file, vcs and
// cicd attributes.
const SemconvSchemaURL = semconv.SchemaURL

// Span types (span names, and the agentwatch.span.type value).
const (
	SpanAgentRun          = "agent_run"
	SpanBashCommand       = "bash_command"
	SpanTestRun           = "test_run"
	SpanLintRun           = "lint_run"
	SpanDependencyInstall = "dependency_install"
	SpanCommit            = "commit"
	SpanPullRequest       = "pull_request"
	SpanPatchApply        = "patch_apply"
	SpanGitDiff           = "git_diff"
	SpanSecretScan        = "secret_scan"
	SpanCodeScan          = "code_scan"
	SpanFileWrite         = "file_write"
	SpanFileRead          = "file_read"
	SpanNetworkCall       = "network_call"
	SpanLLMCall           = "llm_call"   // span type; the name is "chat <model>"
	SpanReview            = "review"     // `agentwatch annotate`: its own trace, linked to the run's root
	SpanAgent             = "agent_span" // the type of every span the agent exported itself: its claim, never evidence
)

// AgentClaimPrefix namespaces what the agent sent in agentwatch's own
// namespaces: an attribute agentwatch.review.decision on a span the agent
// exported is kept as agent.claim.agentwatch.review.decision, a span or
// event named like one of agentwatch's (review, test_run, agentwatch.alert)
// as agent.claim.review. Only agentwatch's sensors and `annotate` make
// evidence.
const AgentClaimPrefix = "agent.claim."

// OpenInference span kinds (openinference.span.kind).
const (
	OIAgent     = "AGENT"
	OILLM       = "LLM"
	OITool      = "TOOL"
	OIChain     = "CHAIN"
	OIGuardrail = "GUARDRAIL"
	OIEvaluator = "EVALUATOR"
)

// Semantic-convention keys, from the pinned package.
const (
	ProcessPID            = semconv.ProcessPIDKey
	ProcessParentPID      = semconv.ProcessParentPIDKey
	ProcessExecutableName = semconv.ProcessExecutableNameKey
	ProcessExecutablePath = semconv.ProcessExecutablePathKey
	ProcessCommandArgs    = semconv.ProcessCommandArgsKey
	// ProcessCommandLine is only read: runs recorded before W2.5 carry it.
	// semconv asks not to assemble it for monitoring where argv exists
	// (process.command_args); the quoted line people read is CommandLine.
	ProcessCommandLine      = semconv.ProcessCommandLineKey
	ProcessWorkingDirectory = semconv.ProcessWorkingDirectoryKey
	ProcessUserID           = semconv.ProcessUserIDKey
	ProcessUserName         = semconv.ProcessUserNameKey
	ProcessExitCode         = semconv.ProcessExitCodeKey
	ErrorType               = semconv.ErrorTypeKey
	FilePath                = semconv.FilePathKey
	FileSize                = semconv.FileSizeKey
	ServerAddress           = semconv.ServerAddressKey
	ServerPort              = semconv.ServerPortKey
	NetworkPeerAddress      = semconv.NetworkPeerAddressKey
	NetworkPeerPort         = semconv.NetworkPeerPortKey
	NetworkTransport        = semconv.NetworkTransportKey
	NetworkType             = semconv.NetworkTypeKey
	DNSQuestionName         = semconv.DNSQuestionNameKey
	VCSRepositoryURLFull    = semconv.VCSRepositoryURLFullKey
	VCSRepositoryName       = semconv.VCSRepositoryNameKey
	VCSRefHeadType          = semconv.VCSRefHeadTypeKey
	ServiceInstanceID       = semconv.ServiceInstanceIDKey
	HostName                = semconv.HostNameKey
	VCSRefHeadName          = semconv.VCSRefHeadNameKey
	VCSRefHeadRevision      = semconv.VCSRefHeadRevisionKey
	SessionID               = semconv.SessionIDKey
	GenAIAgentName          = semconv.GenAIAgentNameKey
	GenAIConversationID     = semconv.GenAIConversationIDKey
	GenAIOperationName      = semconv.GenAIOperationNameKey
	CICDPipelineRunID       = semconv.CICDPipelineRunIDKey
	ServiceName             = semconv.ServiceNameKey
	ServiceVersion          = semconv.ServiceVersionKey
)

// Keys no convention covers.
const (
	SpanType = attribute.Key("agentwatch.span.type")
	// The times an agent-exported span claimed, when they lay outside
	// its parent and the span was moved inside it (recorder/intervals.go).
	ClaimedStart      = attribute.Key("agentwatch.claimed.start")
	ClaimedEnd        = attribute.Key("agentwatch.claimed.end")
	OpenInferenceKind = attribute.Key("openinference.span.kind")

	RunID               = attribute.Key("agentwatch.run.id")
	TaskID              = attribute.Key("agentwatch.task.id")
	TaskURL             = attribute.Key("agentwatch.task.url")
	WorktreeDirtyBefore = attribute.Key("agentwatch.worktree.dirty_before")
	WorktreeDirtyAfter  = attribute.Key("agentwatch.worktree.dirty_after")
	HeadAfter           = attribute.Key("agentwatch.head.after")
	PolicyVersion       = attribute.Key("agentwatch.policy.version")
	PolicyMode          = attribute.Key("agentwatch.policy.mode")
	PolicyDecision      = attribute.Key("agentwatch.policy.decision")
	PolicyRule          = attribute.Key("agentwatch.policy.rule")
	CaptureContent      = attribute.Key("agentwatch.capture.content")
	FailureClass        = attribute.Key("agentwatch.failure.class")
	TelemetryGaps       = attribute.Key("agentwatch.telemetry.gaps")
	EventsDropped       = attribute.Key("agentwatch.events.dropped")
	Sensors             = attribute.Key("agentwatch.sensors")
	Workspace           = attribute.Key("agentwatch.workspace")
	RunUser             = attribute.Key("agentwatch.run.user")

	// The supervisor's own cost, measured with getrusage(RUSAGE_SELF) at the
	// end of the run (the BPF programs' cost is charged to the traced tasks).
	SupervisorCPUSeconds = attribute.Key("agentwatch.supervisor.cpu_seconds")
	SupervisorMaxRSS     = attribute.Key("agentwatch.supervisor.max_rss_bytes")

	CommandApproval      = attribute.Key("agentwatch.command.approval")
	CommandArgsTruncated = attribute.Key("agentwatch.command.args_truncated")
	// CommandLine is process.command_args shell-quoted into one line, for
	// backends that show arrays as JSON and for people; agentwatch's own key
	// because semconv's process.command_line must not be assembled.
	CommandLine           = attribute.Key("agentwatch.command_line")
	ProcessSignal         = attribute.Key("agentwatch.process.signal")
	FilesWritten          = attribute.Key("agentwatch.files.written")
	FilesOutsideWorkspace = attribute.Key("agentwatch.files.outside_workspace")
	FilesOutsideTopDirs   = attribute.Key("agentwatch.files.outside_workspace.top_dirs")
	ConnectionsCount      = attribute.Key("agentwatch.network.connections")
	// Recorder: process lifecycle and bounded summaries.
	ProcessStillRunning = attribute.Key("agentwatch.process.still_running") // no exit seen by the end of the run
	ProcessReplaced     = attribute.Key("agentwatch.process.replaced")      // the pid exec'd again; the next image is the child span
	ConnectionFailures  = attribute.Key("agentwatch.network.failures")      // failed connects to one destination

	FileOperation   = attribute.Key("agentwatch.file.operation")
	FileOperations  = attribute.Key("agentwatch.file.operations")
	FileClass       = attribute.Key("agentwatch.file.class")
	FileInWorkspace = attribute.Key("agentwatch.file.in_workspace")
	FileRenamedTo   = attribute.Key("agentwatch.file.renamed_to")
	FileSource      = attribute.Key("agentwatch.file.source")
	// FileOperations keeps runs of the same op once and is capped; these
	// count what the list cannot show.
	FileOperationsCount = attribute.Key("agentwatch.file.operations.count")
	FileFailures        = attribute.Key("agentwatch.file.failures")
	// New file operations (wave 2).
	FileSymlinkTarget = attribute.Key("agentwatch.file.symlink_target") // symlink: the target as written (not resolved)
	FileLinkedTo      = attribute.Key("agentwatch.file.linked_to")      // hard link: the new name given to this file
	FileXattrs        = attribute.Key("agentwatch.file.xattr")          // setxattr/removexattr: the attribute names (capped)
	FilePersistence   = attribute.Key("agentwatch.file.persistence")    // the persistence pattern the path matched

	// Unix-socket connections (network.transport=unix, network.peer.address = the socket path).
	UnixPeerPID        = attribute.Key("agentwatch.unix.peer.pid")         // the listening process (kernel peer credentials)
	UnixPeerOutsideRun = attribute.Key("agentwatch.unix.peer.outside_run") // the peer is not a process of the run

	ProcessIOURing = attribute.Key("agentwatch.process.io_uring") // "used" | "refused" | "failed": io_uring_setup seen

	AlertRule     = attribute.Key("agentwatch.alert.rule")
	AlertSeverity = attribute.Key("agentwatch.alert.severity")
	AlertMessage  = attribute.Key("agentwatch.alert.message")
	AlertsCount   = attribute.Key("agentwatch.alerts.count")
	AlertsRules   = attribute.Key("agentwatch.alerts.rules") // the rules that fired, most alerts first
	// AlertsRulePrefix + rule is the number of alerts a rule raised: one
	// attribute per rule, so a backend searches a rule by name
	// (agentwatch.alerts.rule.persistence > 0) where a list value would
	// be one JSON string.
	AlertsRulePrefix = "agentwatch.alerts.rule."
	// LabelPrefix + key is a label of the run: the policy's attributes
	// (team, org, …), on the resource and the root.
	LabelPrefix = "agentwatch.label."

	// Policy and its decisions (issue 3).
	PolicySource    = attribute.Key("agentwatch.policy.source")  // the policy file, or "built-in"
	PolicyCheck     = attribute.Key("agentwatch.policy.check")   // address, sni, host, dns-redirect, dns
	NetworkDenied   = attribute.Key("agentwatch.network.denied") // root: connections and lookups refused
	EnvKept         = attribute.Key("agentwatch.env.kept")       // names only, never values
	EnvDropped      = attribute.Key("agentwatch.env.dropped")
	EnvSet          = attribute.Key("agentwatch.env.set")
	EnvFiltered     = attribute.Key("agentwatch.env.filtered") // false: observe mode passed the whole environment
	FilesProtected  = attribute.Key("agentwatch.files.protected")
	DNSQuestionType = attribute.Key("agentwatch.dns.question.type")
	DNSResponseCode = attribute.Key("agentwatch.dns.response_code")
	DNSAnswers      = semconv.DNSAnswersKey
	DNSForwarded    = attribute.Key("agentwatch.dns.forwarded") // the query reached the upstream resolver
	DNSLookups      = attribute.Key("agentwatch.dns.lookups")

	// Workspace evidence (issue 4): the git_diff span and root attributes.
	DiffSHA256         = attribute.Key("agentwatch.diff.sha256") // of the diff as stored (artifact "diff")
	DiffBytes          = attribute.Key("agentwatch.diff.bytes")
	DiffFiles          = attribute.Key("agentwatch.diff.files")
	DiffLinesAdded     = attribute.Key("agentwatch.diff.lines_added")
	DiffLinesRemoved   = attribute.Key("agentwatch.diff.lines_removed")
	DiffTruncated      = attribute.Key("agentwatch.diff.truncated")
	DiffContent        = attribute.Key("agentwatch.diff.content") // full capture only, redacted
	DiffBase           = attribute.Key("agentwatch.diff.base")    // base commit, or the empty tree for an unborn branch
	FilesTouched       = attribute.Key("agentwatch.files.touched")
	FilesDeleted       = attribute.Key("agentwatch.files.deleted")
	FilesGenerated     = attribute.Key("agentwatch.files.generated")    // count
	FilesTooLarge      = attribute.Key("agentwatch.files.too_large")    // untracked files left out of the diff
	FilesUnattributed  = attribute.Key("agentwatch.files.unattributed") // touched, and no file sensor saw it
	LockfilesChanged   = attribute.Key("agentwatch.lockfiles.changed")
	WorkflowsChanged   = attribute.Key("agentwatch.workflows.changed")
	Commits            = attribute.Key("agentwatch.commits")           // SHAs made during the run, newest first
	CommitsAbandoned   = attribute.Key("agentwatch.commits.abandoned") // made, then reset or amended away
	WorktreeState      = attribute.Key("agentwatch.worktree.state")    // merging, rebasing, … at the end
	EvidenceAbsent     = attribute.Key("agentwatch.evidence.absent")   // why there is no workspace evidence
	EvidenceErrors     = attribute.Key("agentwatch.evidence.errors")   // steps of it that failed
	EvidenceListCapped = attribute.Key("agentwatch.evidence.lists_capped")

	// Command classes (issue 4): on test_run, lint_run, dependency_install, … spans.
	CommandClass       = attribute.Key("agentwatch.command.class") // the span's class, same as its name
	CommandTool        = attribute.Key("agentwatch.command.tool")  // the rule that matched: "go test", "npm install"
	TestOutcome        = attribute.Key("agentwatch.test.outcome")  // passed / failed, from the exit status
	TestPassed         = attribute.Key("agentwatch.test.passed")   // counts: only when output is captured
	TestFailed         = attribute.Key("agentwatch.test.failed")
	TestSkipped        = attribute.Key("agentwatch.test.skipped")
	DependencyManager  = attribute.Key("agentwatch.dependency.manager")  // npm, pip, go, cargo, apt, …
	DependencyPackages = attribute.Key("agentwatch.dependency.packages") // as named on the command line (redacted)
	CommitSHA          = attribute.Key("agentwatch.commit.sha")          // the commit a `git commit` made
	PRURL              = attribute.Key("agentwatch.pr.url")

	// The secret scan (issue 4): counts and locations, never a secret.
	SecretFindings      = attribute.Key("agentwatch.secret.findings")       // all findings
	SecretUnique        = attribute.Key("agentwatch.secret.unique")         // distinct fingerprints among those listed
	SecretRules         = attribute.Key("agentwatch.secret.rules")          // "rule:count", sorted
	SecretLocations     = attribute.Key("agentwatch.secret.locations")      // "file:line (rule)", bounded
	SecretFingerprints  = attribute.Key("agentwatch.secret.fingerprints")   // truncated sha256, parallel to locations
	SecretFilesScanned  = attribute.Key("agentwatch.secret.files_scanned")  // diff entries with added lines, plus files outside git
	SecretLinesScanned  = attribute.Key("agentwatch.secret.lines_scanned")  // added lines
	SecretBinarySkipped = attribute.Key("agentwatch.secret.binary_skipped") // binary diff entries
	SecretTruncated     = attribute.Key("agentwatch.secret.truncated")      // a bound was reached: the counts are a floor

	// Evals on the root (issue 4): see recorder/failure.go for how each is derived.
	EvalTestsPassed  = attribute.Key("agentwatch.eval.tests_passed")  // the last test_run's outcome; absent: no test_run
	EvalDiffRisk     = attribute.Key("agentwatch.eval.diff_risk")     // 0-100; absent without workspace evidence
	EvalSecurityScan = attribute.Key("agentwatch.eval.security_scan") // clean, findings:N, not_run
	FailureReason    = attribute.Key("agentwatch.failure.reason")     // the evidence behind agentwatch.failure.class

	// The review span (`agentwatch annotate`), and the audit trail.
	ReviewDecision = attribute.Key("agentwatch.review.decision") // approved, rejected
	ReviewReviewer = attribute.Key("agentwatch.review.reviewer")
	ReviewNote     = attribute.Key("agentwatch.review.note")
	ReviewSeq      = attribute.Key("agentwatch.review.seq") // 1 for the run's first annotation
	CICDRunURL     = semconv.CICDPipelineRunURLFullKey
	VCSChangeID    = semconv.VCSChangeIDKey
	CaptureExpires = attribute.Key("agentwatch.capture.expires")
	LinkRelation   = attribute.Key("agentwatch.link.relation") // on the review span's link: "reviews"

	// Model calls (issue 5): the chat <model> span (GenAI conventions plus
	// the OpenInference keys Phoenix reads) and the root's totals.
	GenAIProviderName           = semconv.GenAIProviderNameKey
	GenAIRequestModel           = semconv.GenAIRequestModelKey // only on model-call spans: Langfuse makes any span carrying it a generation
	GenAIResponseModel          = semconv.GenAIResponseModelKey
	GenAIResponseID             = semconv.GenAIResponseIDKey
	GenAIResponseFinishReasons  = semconv.GenAIResponseFinishReasonsKey
	GenAIResponseTimeToFirst    = semconv.GenAIResponseTimeToFirstChunkKey // seconds
	GenAIRequestStream          = semconv.GenAIRequestStreamKey
	GenAIRequestMaxTokens       = semconv.GenAIRequestMaxTokensKey
	GenAIUsageInputTokens       = semconv.GenAIUsageInputTokensKey // cached included
	GenAIUsageOutputTokens      = semconv.GenAIUsageOutputTokensKey
	GenAIUsageCacheReadTokens   = semconv.GenAIUsageCacheReadInputTokensKey
	GenAIUsageCacheCreateTokens = semconv.GenAIUsageCacheCreationInputTokensKey // cache_write in newer conventions
	GenAIUsageReasoningTokens   = semconv.GenAIUsageReasoningOutputTokensKey
	HTTPResponseStatusCode      = semconv.HTTPResponseStatusCodeKey
	HTTPRequestMethod           = semconv.HTTPRequestMethodKey
	URLPath                     = semconv.URLPathKey
	PromptSHA256                = attribute.Key("agentwatch.prompt.sha256")        // of the whole request body
	SystemPromptSHA256          = attribute.Key("agentwatch.system_prompt.sha256") // of the system prompt / instructions
	LLMAPI                      = attribute.Key("agentwatch.llm.api")              // messages, chat.completions, responses
	LLMRequestBytes             = attribute.Key("agentwatch.llm.request.bytes")
	LLMResponseBytes            = attribute.Key("agentwatch.llm.response.bytes")
	LLMToolsOffered             = attribute.Key("agentwatch.llm.tools.offered")    // tool names
	LLMToolCallNames            = attribute.Key("agentwatch.llm.tool_calls.names") // parallel to ids
	LLMToolCallIDs              = attribute.Key("agentwatch.llm.tool_calls.ids")
	LLMToolCallArgs             = attribute.Key("agentwatch.llm.tool_calls.arguments") // full capture only, redacted
	LLMTTFTMillis               = attribute.Key("agentwatch.llm.ttft_ms")
	LLMUsageKnown               = attribute.Key("agentwatch.llm.usage_known")     // false: the response carried no usage
	LLMAttributedBy             = attribute.Key("agentwatch.llm.attributed_by")   // pid, root_process, run: how the calling process was found
	LLMRepeat                   = attribute.Key("agentwatch.llm.repeat")          // earlier calls with this exact request body
	LLMPrompt                   = attribute.Key("agentwatch.llm.prompt")          // full capture only, redacted
	LLMResponse                 = attribute.Key("agentwatch.llm.response")        // full capture only, redacted
	LLMCalls                    = attribute.Key("agentwatch.llm.calls")           // root: model calls
	LLMOtherRequests            = attribute.Key("agentwatch.llm.other_requests")  // root: count_tokens, /api/hello, models, … (no span)
	LLMCallsUnpriced            = attribute.Key("agentwatch.llm.calls.unpriced")  // root: calls with no cost (unknown model or usage)
	LLMProxyEndpoints           = attribute.Key("agentwatch.llm.proxy.endpoints") // root: the run's proxy listeners, host:port
	CostUSD                     = attribute.Key("agentwatch.cost.usd")
	CostPriceTable              = attribute.Key("agentwatch.cost.price_table") // root: version of the price table used
	OILLMModelName              = attribute.Key("llm.model_name")
	OILLMProvider               = attribute.Key("llm.provider")
	OILLMSystem                 = attribute.Key("llm.system")             // the model family's vendor (anthropic, openai)
	OIToolName                  = attribute.Key("tool.name")              // on TOOL spans: the executable, or the span type
	OILLMTokensPrompt           = attribute.Key("llm.token_count.prompt") // inclusive of cached
	OILLMTokensCompletion       = attribute.Key("llm.token_count.completion")
	OILLMTokensTotal            = attribute.Key("llm.token_count.total")
	OILLMTokensCacheRead        = attribute.Key("llm.token_count.prompt_details.cache_read")
	OILLMTokensCacheWrite       = attribute.Key("llm.token_count.prompt_details.cache_write")
	OILLMTokensReasoning        = attribute.Key("llm.token_count.completion_details.reasoning")
	OILLMCostTotal              = attribute.Key("llm.cost.total")
	OILLMCostPrompt             = attribute.Key("llm.cost.prompt")     // input side, cached tokens included
	OILLMCostCompletion         = attribute.Key("llm.cost.completion") // output side, reasoning included
	OILLMFinishReason           = attribute.Key("llm.finish_reason")   // the first of gen_ai.response.finish_reasons
	OILLMInvocationParameters   = attribute.Key("llm.invocation_parameters")
)

// The agent's own telemetry and content capture (issue 5, agentotel).
const (
	// SpanSource says who made a span the recorder did not build from
	// kernel events: SourceAgent for spans the agent exported itself,
	// SourceAgentTelemetry for an LLM span made from the agent's
	// claude_code.api_request log record (no proxy call matched it).
	SpanSource       = attribute.Key("agentwatch.span.source")
	AgentServiceName = attribute.Key("agentwatch.agent.service.name") // the agent's resource service.name
	AgentSpans       = attribute.Key("agentwatch.agent.spans")        // root: received spans kept
	AgentLogs        = attribute.Key("agentwatch.agent.logs")         // root: received log records
	AgentMetrics     = attribute.Key("agentwatch.agent.metrics")      // root: received metric data points (counted, not kept)
	AgentToolCallID  = attribute.Key("agentwatch.agent.tool_call_id") // process span: the agent's tool call that ran it
	AgentSpanID      = attribute.Key("agentwatch.agent.span_id")      // process span: the agent's tool span (from TRACEPARENT)
	AgentLinkedBy    = attribute.Key("agentwatch.agent.linked_by")    // process span: environ (its TRACEPARENT) or time (sole command in the tool span's window)
	AgentTraceID     = attribute.Key("agentwatch.agent.trace_id")     // agent span: its original trace id, when it was moved into the run's

	CommandOutput          = attribute.Key("agentwatch.command.output") // full capture only, redacted, bounded
	CommandOutputBytes     = attribute.Key("agentwatch.command.output.bytes")
	CommandOutputTruncated = attribute.Key("agentwatch.command.output.truncated")

	GenAIInputMessages      = semconv.GenAIInputMessagesKey      // full capture only, redacted
	GenAIOutputMessages     = semconv.GenAIOutputMessagesKey     // full capture only, redacted
	GenAISystemInstructions = semconv.GenAISystemInstructionsKey // full capture only, redacted
)

// Span sources (agentwatch.span.source).
const (
	SourceAgent          = "agent"
	SourceAgentTelemetry = "agent_telemetry"
)

// Alert rules (agentwatch.alert.rule) and severities.
const (
	AlertUnknownDomain = "unknown_domain"
	AlertPolicyBypass  = "policy_bypass"
	AlertWorkflowEdit  = "workflow_edit"
	AlertSecretAccess  = "secret_access"
	AlertEnvSecret     = "env_secret_exposed"   // observe mode gave the child a variable env.allow would drop
	AlertSecretFound   = "secret_found"         // the secret scan found a credential the run added
	AlertMissingSpans  = "missing_nested_spans" // a received agent span whose parent never arrived

	// Built-in rules over the whole run (recorder/rules.go).
	AlertDependencyInstall = "dependency_install"       // an install the policy did not expect
	AlertRetries           = "retries_without_progress" // the same command again with no workspace change
	AlertDeniedLoop        = "denied_loop"              // the same denied destination or path hit again and again
	AlertPRWithoutTests    = "pull_request_without_tests"
	AlertMissingTelemetry  = "missing_telemetry" // a sensor missing or events dropped
	AlertRunawaySpend      = "runaway_spend"     // the run's model cost crossed alerts.spend_usd
	AlertMissingCostData   = "missing_cost_data" // an LLM span without token usage, or without a price for its model

	// Containment rules (wave 2, docs/policy.md).
	AlertPersistence    = "persistence"             // a change that runs code later: git hook, shell rc, cron, unit, git config key
	AlertUnixOutsideRun = "unix_socket_outside_run" // a unix-socket connection to a process outside the run
	AlertIOURing        = "io_uring"                // io_uring set up: its operations bypass the sensors
	AlertUnattributed   = "unattributed_change"     // the workspace evidence shows a change no sensor saw

	SeverityLow    = "low"
	SeverityMedium = "medium"
	SeverityHigh   = "high"
)

// Span event names.
const (
	EventAlert          = "agentwatch.alert"
	EventPolicyDecision = "policy_decision"
	EventFileFailed     = "agentwatch.file.failed" // a refused attempt (EROFS, EACCES), with its error.type
)

// Failure classes (agentwatch.failure.class), the taxonomy of telemetry.md.
const (
	FailureModelReasoning   = "model_reasoning"
	FailureContextRetrieval = "context_retrieval"
	FailureToolAPI          = "tool_api"
	FailureShellEnvironment = "shell_environment"
	FailureDependency       = "dependency"
	FailureTestFailure      = "test_failure"
	FailureMergeConflict    = "merge_conflict"
	FailurePolicyBlock      = "policy_block"
	FailurePermissionBlock  = "permission_block"
	FailureSecurityFinding  = "security_finding"
	FailureBudgetBreach     = "budget_breach"
	FailureTelemetryGap     = "telemetry_gap"
	FailureReviewRejected   = "review_rejected"
	FailureInterrupted      = "interrupted"
	// Derived only, never annotated: the run succeeded with nothing wrong,
	// or failed and the evidence does not say why.
	FailureNone    = "none"
	FailureUnknown = "unknown"
)

// FailureClasses is the taxonomy `agentwatch annotate --failure-class` accepts.
var FailureClasses = []string{
	FailureModelReasoning, FailureContextRetrieval, FailureToolAPI, FailureShellEnvironment,
	FailureDependency, FailureTestFailure, FailureMergeConflict, FailurePolicyBlock,
	FailurePermissionBlock, FailureSecurityFinding, FailureBudgetBreach, FailureTelemetryGap,
	FailureReviewRejected, FailureInterrupted,
}

// Aggregation (W2.2): past the per-process and per-run span budgets, file,
// network and DNS activity of a process is one aggregate span per kind;
// the root says what was aggregated. docs/telemetry.md, "Bounded".
const (
	SpanFileAggregate    = "file_aggregate"
	SpanNetworkAggregate = "network_aggregate"
	SpanDNSAggregate     = "dns_aggregate"
	SpanProcessAggregate = "process_aggregate"
)

// Attributes of aggregate spans and of the root about them.
const (
	AggregatedCount           = attribute.Key("agentwatch.aggregated.count")            // distinct paths / destinations / names
	AggregatedEvents          = attribute.Key("agentwatch.aggregated.events")           // operations / attempts / lookups folded in
	AggregatedOperations      = attribute.Key("agentwatch.aggregated.operations")       // "create (100000)", most first
	AggregatedFirst           = attribute.Key("agentwatch.aggregated.first")            // the first distinct keys, in order seen
	AggregatedSHA256          = attribute.Key("agentwatch.aggregated.sha256")           // of the sorted full list, NUL-terminated entries
	AggregatedPartial         = attribute.Key("agentwatch.aggregated.partial")          // the list outgrew its bound: count and digest are partial
	AggregatedTopDirs         = attribute.Key("agentwatch.aggregated.top_dirs")         // "src/gen (1000)"
	AggregatedTopDestinations = attribute.Key("agentwatch.aggregated.top_destinations") // "tcp 127.0.0.1:80 (12)"
	AggregatedFailures        = attribute.Key("agentwatch.aggregated.failures")
	AggregatedAlerting        = attribute.Key("agentwatch.aggregated.alerting") // evidence keys past the evidence ceiling
	AggregatedDenied          = attribute.Key("agentwatch.aggregated.denied")   // refusals among them
	AggregatedSpans           = attribute.Key("agentwatch.aggregated.spans")    // root: aggregate spans in the trace
	AggregatedFiles           = attribute.Key("agentwatch.aggregated.files")    // root: distinct paths aggregated
	AggregatedDestinations    = attribute.Key("agentwatch.aggregated.destinations")
	AggregatedDNSNames        = attribute.Key("agentwatch.aggregated.dns_names")
	AggregatedCommands        = attribute.Key("agentwatch.aggregated.commands")        // root: distinct command lines aggregated
	AggregatedTopExecutables  = attribute.Key("agentwatch.aggregated.top_executables") // "curl (5000)"
	AggregatedBudgets         = attribute.Key("agentwatch.aggregated.budgets")
	// The run's file list (the store's "files" artifact): every workspace
	// path changed or attempted, spanned or aggregated.
	FilesListCount    = attribute.Key("agentwatch.files.list.count")
	FilesListSHA256   = attribute.Key("agentwatch.files.list.sha256")
	FilesListUnlisted = attribute.Key("agentwatch.files.list.unlisted") // paths past the list's bound (counted, not named)
)

// Labels, CI and the run's pull request (the fleet report's grouping keys).
// Everything here on the root comes from the operator's side — the
// command line, the policy, the environment agentwatch itself was started
// with — or, for the pull request from output and the pushed branches,
// from what the sensors saw the run do; docs/telemetry.md.
const (
	CICDPipelineName = semconv.CICDPipelineNameKey // GITHUB_WORKFLOW, CI_PIPELINE_NAME, BUILDKITE_PIPELINE_NAME, JOB_NAME
	// CISystem is the CI system whose variables were read: one of the
	// CISystem* values.
	CISystem = attribute.Key("agentwatch.ci.system")
	// PRSource says where agentwatch.pr.url came from: one of the
	// PRSource* values.
	PRSource = attribute.Key("agentwatch.pr.source")
	// PRClaimedURLs are pull/merge request URLs the run printed that were
	// not taken as its pull request (another repository's, or a second
	// one): what the output claimed, capped.
	PRClaimedURLs = attribute.Key("agentwatch.pr.claimed_urls")
	// GitPushedBranches are the branches `git push` command lines named
	// (the destination of each refspec), in order, capped.
	GitPushedBranches = attribute.Key("agentwatch.git.pushed_branches")
	// CostSource says where a model call's agentwatch.cost.usd came from
	// (CostSource* values); on the root, mixed when both were used.
	CostSource = attribute.Key("agentwatch.cost.source")
)

// Values of agentwatch.ci.system.
const (
	CISystemGitHubActions = "github_actions"
	CISystemGitLabCI      = "gitlab_ci"
	CISystemBuildkite     = "buildkite"
	CISystemCircleCI      = "circleci"
	CISystemJenkins       = "jenkins"
)

// Values of agentwatch.pr.source.
const (
	PRSourceCI       = "ci"       // the CI job's variables (a pull_request build)
	PRSourceOutput   = "output"   // a URL of the run's repository in the output the supervisor relayed
	PRSourceAnnotate = "annotate" // `agentwatch annotate --pr`, on the review span
)

// Values of agentwatch.cost.source.
const (
	CostSourcePriceTable    = "price_table"    // usage × agentwatch's price table (prices/)
	CostSourceAgentReported = "agent_reported" // the agent's own figure (Claude Code's api_request cost_usd)
	CostSourceMixed         = "mixed"          // root: some calls of each
)

// Model calls (W2.5b): the agent's template, the context a request
// carried, guardrails, the sampling decision, request parameters and
// retries, on chat spans; retry totals on the root. docs/telemetry.md,
// "Model calls".
const (
	GenAIRequestTemperature   = semconv.GenAIRequestTemperatureKey
	GenAIRequestTopP          = semconv.GenAIRequestTopPKey
	GenAIRequestTopK          = semconv.GenAIRequestTopKKey
	GenAIRequestSeed          = semconv.GenAIRequestSeedKey
	GenAIRequestStopSequences = semconv.GenAIRequestStopSequencesKey // full capture only, redacted

	LLMTemplateSHA256 = attribute.Key("agentwatch.llm.template.sha256") // system prompt + tool definitions
	LLMToolsSHA256    = attribute.Key("agentwatch.llm.tools.sha256")    // tool definitions (names, input schemas), order-independent
	// The tool results the request brought back that are new in it: their
	// tool call ids (capped), how many, how many marked errors.
	LLMContextToolResultIDs = attribute.Key("agentwatch.llm.context.tool_result_ids")
	LLMContextToolResults   = attribute.Key("agentwatch.llm.context.tool_results")
	LLMContextToolErrors    = attribute.Key("agentwatch.llm.context.tool_errors")
	LLMGuardrail            = attribute.Key("agentwatch.llm.guardrail")     // none, refusal, content_filter
	LLMSampled              = attribute.Key("agentwatch.llm.sampled")       // always true: every call is recorded
	LLMRetryAfterS          = attribute.Key("agentwatch.llm.retry_after_s") // failed calls: the upstream's Retry-After, seconds
	// Retries: a call whose request body is identical to an earlier one's.
	LLMRetryCount        = attribute.Key("agentwatch.llm.retry.count")         // earlier attempts of this body
	LLMRetryWastedTokens = attribute.Key("agentwatch.llm.retry.wasted_tokens") // span: the earlier attempts' tokens; root: every retried attempt's, once
	LLMRetryWastedUSD    = attribute.Key("agentwatch.llm.retry.wasted_usd")
	LLMRetryCalls        = attribute.Key("agentwatch.llm.retry.calls") // root: calls that were retries
)

// Values of agentwatch.llm.guardrail, and agentwatch.link.relation of a
// chat span's links.
const (
	GuardrailNone          = "none"
	GuardrailRefusal       = "refusal"
	GuardrailContentFilter = "content_filter"

	LinkToolResultOf = "tool_result_of" // to the model call that asked for a tool result this request carries
	LinkRetryOf      = "retry_of"       // to the previous attempt of the same request body
)

// Tool calls and MCP (W2.5b): a tool_call span of agentwatch's own for
// every tool call the model asked for (the proxy's tool_use blocks), the
// processes it ran nested under it; MCP servers the agent started.
// docs/telemetry.md, "Tool calls".
const (
	SpanToolCall  = "tool_call"  // span type; the name is "execute_tool <gen_ai.tool.name>"
	SpanMCPServer = "mcp_server" // a process span: an MCP server of the agent's configuration (its name stays the executable)

	GenAIToolName          = semconv.GenAIToolNameKey
	GenAIToolCallID        = semconv.GenAIToolCallIDKey
	GenAIToolCallArguments = semconv.GenAIToolCallArgumentsKey // full capture only, redacted

	ToolAction          = attribute.Key("agentwatch.tool.action")           // read, write, edit, exec, search, network, mcp, other
	ToolArgumentsSHA256 = attribute.Key("agentwatch.tool.arguments.sha256") // of the arguments as canonical JSON
	ToolResultSHA256    = attribute.Key("agentwatch.tool.result.sha256")    // of the tool_result's content as sent back
	ToolStatus          = attribute.Key("agentwatch.tool.status")           // ok, error (is_error), no_result
	ToolRetryCount      = attribute.Key("agentwatch.tool.retry.count")      // earlier failed attempts of the same name and arguments
	ToolFilesWritten    = attribute.Key("agentwatch.tool.files_written")    // file_write spans of what it ran (or that it linked)
	ToolConnections     = attribute.Key("agentwatch.tool.connections")      // network_call spans of what it ran
	ToolInstalls        = attribute.Key("agentwatch.tool.installs")         // dependency_install spans of what it ran
	ToolProcesses       = attribute.Key("agentwatch.tool.processes")        // process spans directly under it
	ToolMatchedBy       = attribute.Key("agentwatch.tool.matched_by")       // process span: tool_call_id, traceparent, command or time
	ToolDecision        = attribute.Key("agentwatch.tool.decision")         // accept, reject: the agent's permission decision, when it reported one
	ToolApprovalSource  = attribute.Key("agentwatch.tool.approval.source")  // argv (the agent's command line) or agent_telemetry (its claim)
	ToolCalls           = attribute.Key("agentwatch.tool.calls")            // root: tool_call spans
	ToolCallsFailed     = attribute.Key("agentwatch.tool.calls.error")      // root: those with status error
	ToolCallsNoResult   = attribute.Key("agentwatch.tool.calls.no_result")  // root: those never answered
	MCPServerName       = attribute.Key("agentwatch.mcp.server.name")       // mcp_server process spans and mcp tool calls
)

// Values of agentwatch.tool.action, agentwatch.tool.status,
// agentwatch.command.approval, and agentwatch.link.relation of a tool
// span's links.
const (
	ToolActionRead    = "read"
	ToolActionWrite   = "write"
	ToolActionEdit    = "edit"
	ToolActionExec    = "exec"
	ToolActionSearch  = "search"
	ToolActionNetwork = "network"
	ToolActionMCP     = "mcp"
	ToolActionOther   = "other"

	ToolStatusOK       = "ok"
	ToolStatusError    = "error"
	ToolStatusNoResult = "no_result"

	ApprovalAuto    = "auto"   // permissions bypassed (--dangerously-skip-permissions, bypassPermissions mode)
	ApprovalPolicy  = "policy" // a permission rule of the agent's configuration allowed it
	ApprovalUser    = "user"   // a person answered the prompt
	ApprovalHook    = "hook"   // a hook decided
	ApprovalUnknown = "unknown"

	LinkToolCallOf   = "tool_call_of"   // to the model call whose response asked for the tool call
	LinkToolResultIn = "tool_result_in" // to the model call whose request carried its result
	LinkMCPServer    = "mcp_server"     // to the process span of the MCP server that served it
	LinkToolFile     = "tool_file"      // to a file span of the agent's own that the tool's path names, within its interval
)

// Command logs (W2.5b): on process spans.
const (
	NetworkDestinations      = attribute.Key("agentwatch.network.destinations")       // distinct host:port (or address:port, unix:path) this process connected to, first seen first, capped
	NetworkDestinationsCount = attribute.Key("agentwatch.network.destinations.count") // all distinct destinations, uncapped
	CommandShell             = attribute.Key("agentwatch.command.shell")              // the shell that ran the command: the nearest shell among its parent processes
	CommandOutputCapture     = attribute.Key("agentwatch.command.output.capture")     // the policy that applied to its output: none (metadata tier) | run (full tier: the run's output, on the top command) | kept (this span holds it)
	CommandOutputLimit       = attribute.Key("agentwatch.command.output.limit_bytes") // kept: the bound it was cut to (capture.output_bytes), after redaction
)

// Values of CommandOutputCapture.
const (
	OutputCaptureNone = "none"
	OutputCaptureRun  = "run"
	OutputCaptureKept = "kept"
)

// SeverityRank orders alert severities, most severe first: high 0,
// medium 1, low 2, anything else 3.
func SeverityRank(s string) int {
	switch s {
	case SeverityHigh:
		return 0
	case SeverityMedium:
		return 1
	case SeverityLow:
		return 2
	}
	return 3
}
