package recorder

// MCP servers: the stdio servers of the agent's MCP configuration (Claude
// Code's workspace .mcp.json, ~/.claude.json's mcpServers — the user's and
// the project's — and --mcp-config), which the supervisor reads at run
// start (RunInfo.MCPServers). The agent starts each as a child process:
// that process span is classed mcp_server (agentwatch.span.type; its name
// stays the executable) with agentwatch.mcp.server.name, and a tool call
// named mcp__<server>__<tool> links to it (tools.go). What the server does
// — its connections, its files, its own children — is under its span as
// for any process.
//
// Matching an exec to a server: the executable's base name is the
// command's (or the exec'd argv[0]'s), and the arguments are the
// configured ones, in order (a launcher may add options before them). The
// first server that matches names it; a process under a server's span is
// not matched again (npx execs node in the same subtree).

import (
	"encoding/json"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/agentwatch/agentwatch/telemetry"
)

// MCPServer is one MCP server of the agent's configuration.
type MCPServer struct {
	Name    string   // the name the configuration gives it, as tool names carry it (mcp__<name>__<tool>)
	Command string   // a stdio server's executable, as configured; "" for an http/sse server (no process)
	Args    []string // its arguments
	Source  string   // the file it was read from, or "--mcp-config"
}

// maxMCPServers bounds the servers kept from a configuration.
const maxMCPServers = 64

// ParseMCPConfig reads the MCP servers of one configuration file: the
// top-level "mcpServers" object (.mcp.json, --mcp-config, ~/.claude.json)
// and, for project (a workspace path, may be ""), ~/.claude.json's
// "projects"[project]."mcpServers". Servers are sorted by name; a file
// that is not such JSON gives none.
func ParseMCPConfig(data []byte, project, source string) []MCPServer {
	type server struct {
		Type    string   `json:"type"`
		Command string   `json:"command"`
		Args    []string `json:"args"`
	}
	var cfg struct {
		MCPServers map[string]json.RawMessage `json:"mcpServers"`
		Projects   map[string]struct {
			MCPServers map[string]json.RawMessage `json:"mcpServers"`
		} `json:"projects"`
	}
	if json.Unmarshal(data, &cfg) != nil {
		return nil
	}
	all := []map[string]json.RawMessage{cfg.MCPServers}
	if p, ok := cfg.Projects[project]; ok && project != "" {
		all = append(all, p.MCPServers)
	}
	var out []MCPServer
	for _, m := range all {
		names := make([]string, 0, len(m))
		for n := range m {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			var s server
			if n == "" || json.Unmarshal(m[n], &s) != nil || len(out) >= maxMCPServers {
				continue
			}
			if s.Type != "" && s.Type != "stdio" {
				s.Command, s.Args = "", nil // http, sse: nothing is exec'd
			}
			out = append(out, MCPServer{Name: n, Command: s.Command, Args: s.Args, Source: source})
		}
	}
	return out
}

// mcpName normalises a server (or tool) name the way Claude Code does in
// tool names: every character but letters, digits, _ and - becomes _.
func mcpName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

// splitMCPTool reads mcp__<server>__<tool>; ok is false for other names.
func splitMCPTool(name string) (server, tool string, ok bool) {
	rest, found := strings.CutPrefix(name, "mcp__")
	if !found {
		return "", "", false
	}
	server, tool, found = strings.Cut(rest, "__")
	if !found || server == "" || tool == "" {
		return "", "", false
	}
	return server, tool, true
}

// mcpServerFor names the configured server argv (the exec's, before
// redaction) starts; "" for none.
func (r *Recorder) mcpServerFor(filename string, argv []string) string {
	if len(r.info.MCPServers) == 0 || len(argv) == 0 {
		return ""
	}
	exe, arg0 := path.Base(filename), path.Base(argv[0])
	for _, srv := range r.info.MCPServers {
		if srv.Command == "" {
			continue
		}
		cmd := path.Base(srv.Command)
		if cmd != exe && cmd != arg0 {
			continue
		}
		if len(srv.Args) == 0 && len(argv) == 1 || len(srv.Args) > 0 && hasSuffixArgs(argv[1:], srv.Args) {
			return srv.Name
		}
	}
	return ""
}

func hasSuffixArgs(args, want []string) bool {
	return len(args) >= len(want) && slices.Equal(args[len(args)-len(want):], want)
}

// classifyMCP classes an exec that starts one of the agent's MCP servers
// (unless it is under one already).
func (r *Recorder) classifyMCP(s, parent *procSpan, filename string, argv []string) {
	if parent != nil && (parent.mcpServer != "" || parent.underMCP) {
		s.underMCP = true // the server's own process tree (npx → node)
		return
	}
	if name := r.mcpServerFor(filename, argv); name != "" {
		s.mcpServer = name
		s.cls = nil
		s.name = telemetry.SpanMCPServer
	}
}
