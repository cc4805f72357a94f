package supervisor

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/agentwatch/agentwatch/recorder"
)

// maxMCPConfig bounds one MCP configuration file read at run start.
const maxMCPConfig = 1 << 20

// mcpServers reads the MCP servers the agent may start (recorder/mcp.go):
// those given to --mcp-config (files, relative to the working directory,
// or JSON strings), the workspace's .mcp.json (and the working
// directory's, when it is another), and ~/.claude.json's (the user's and
// this project's). Read as the run starts, before the agent can change
// them; a file that is missing or not JSON gives none.
func mcpServers(ws, dir, home string, argv []string) []recorder.MCPServer {
	var out []recorder.MCPServer
	// agentwatch reads these as root, before the agent runs, from places
	// an earlier agent could write: never blocking on a FIFO planted
	// there, and not following a planted symlink to a file the agent's
	// user could not read (follow: only the operator's --mcp-config).
	read := func(p, project, source string, follow bool) {
		flags := os.O_RDONLY | syscall.O_NONBLOCK | syscall.O_CLOEXEC
		if !follow {
			flags |= syscall.O_NOFOLLOW
		}
		f, err := os.OpenFile(p, flags, 0)
		if err != nil {
			return
		}
		defer f.Close()
		if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
			return
		}
		b, err := io.ReadAll(io.LimitReader(f, maxMCPConfig))
		if err == nil {
			out = append(out, recorder.ParseMCPConfig(b, project, source)...)
		}
	}
	for _, v := range mcpConfigArgs(argv) {
		if strings.HasPrefix(strings.TrimSpace(v), "{") {
			out = append(out, recorder.ParseMCPConfig([]byte(v), "", "--mcp-config")...)
			continue
		}
		if !filepath.IsAbs(v) {
			v = filepath.Join(dir, v)
		}
		read(v, "", "--mcp-config", true)
	}
	for _, d := range uniqueDirs(ws, dir) {
		read(filepath.Join(d, ".mcp.json"), "", ".mcp.json", false)
	}
	if home != "" {
		for _, project := range uniqueDirs(ws, dir) {
			read(filepath.Join(home, ".claude.json"), project, "~/.claude.json", false)
		}
	}
	// The user's servers come once per project read: keep each server once.
	seen := map[string]bool{}
	kept := out[:0]
	for _, s := range out {
		key := s.Name + "\x00" + s.Command + "\x00" + strings.Join(s.Args, "\x00")
		if !seen[key] {
			seen[key] = true
			kept = append(kept, s)
		}
	}
	return kept
}

func uniqueDirs(ws, dir string) []string {
	var out []string
	for _, d := range []string{ws, dir} {
		if d != "" && (len(out) == 0 || out[0] != d) {
			out = append(out, d)
		}
	}
	return out
}

// mcpConfigArgs are the values of --mcp-config on the agent's command
// line (it takes several: every word up to the next option).
func mcpConfigArgs(argv []string) []string {
	var out []string
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		if v, ok := strings.CutPrefix(a, "--mcp-config="); ok {
			out = append(out, v)
			continue
		}
		if a != "--mcp-config" {
			continue
		}
		for i+1 < len(argv) && !strings.HasPrefix(argv[i+1], "-") {
			i++
			out = append(out, argv[i])
		}
	}
	return out
}
