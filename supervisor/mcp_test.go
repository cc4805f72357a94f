package supervisor

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestMCPServers: the servers of --mcp-config (a file and a JSON string),
// the workspace's .mcp.json and ~/.claude.json (the user's and the
// project's), each once.
func TestMCPServers(t *testing.T) {
	ws, home := t.TempDir(), t.TempDir()
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(ws, ".mcp.json"), `{"mcpServers":{"notes":{"command":"python3","args":["notes.py"]}}}`)
	if err := os.Mkdir(filepath.Join(ws, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(ws, "sub", "extra.json"), `{"mcpServers":{"extra":{"command":"extra-mcp"}}}`)
	write(filepath.Join(home, ".claude.json"), `{"mcpServers":{"gh":{"command":"npx","args":["-y","@mcp/gh"]}},"projects":{"`+ws+`":{"mcpServers":{"db":{"command":"db-mcp"}}}}}`)
	argv := []string{"claude", "-p", "x", "--mcp-config", "extra.json", `{"mcpServers":{"inline":{"command":"inline-mcp"}}}`, "--strict-mcp-config"}
	got := mcpServers(ws, filepath.Join(ws, "sub"), home, argv)
	var names []string
	for _, s := range got {
		names = append(names, s.Name+"@"+s.Source)
	}
	want := []string{"extra@--mcp-config", "inline@--mcp-config", "notes@.mcp.json", "gh@~/.claude.json", "db@~/.claude.json"}
	if len(names) != len(want) {
		t.Fatalf("servers %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Errorf("servers %v, want %v", names, want)
			break
		}
	}
	if got := mcpServers(t.TempDir(), "", "", []string{"claude"}); len(got) != 0 {
		t.Errorf("no configuration: %v", got)
	}
}

// A workspace an earlier agent prepared: a FIFO as .mcp.json must not
// hang the next run's start, and a symlink to a file elsewhere (one the
// agent's user could not read) is not followed.
func TestMCPServersPlantedFiles(t *testing.T) {
	ws, home, elsewhere := t.TempDir(), t.TempDir(), t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(ws, ".mcp.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(elsewhere, "root-only.json")
	if err := os.WriteFile(secret, []byte(`{"mcpServers":{"leaked-name":{"command":"x"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(home, ".claude.json")); err != nil {
		t.Fatal(err)
	}
	done := make(chan []string, 1)
	go func() {
		var names []string
		for _, s := range mcpServers(ws, ws, home, []string{"claude"}) {
			names = append(names, s.Name)
		}
		done <- names
	}()
	select {
	case names := <-done:
		if len(names) != 0 {
			t.Errorf("servers from planted files: %v", names)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reading a FIFO .mcp.json blocked the run's start")
	}
}
