package cli

import (
	"os/exec"
	"strings"
	"testing"
)

// The command line talks to the supervisor (running), report (rendering),
// export and store (sending, reading); it never imports a sensor directly
// (docs/architecture.md).
func TestCLIImportsNoSensor(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, "github.com/agentwatch/agentwatch/cli").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := strings.Fields(string(out))
	if len(imports) == 0 {
		t.Fatal("go list listed no imports")
	}
	for _, imp := range imports {
		for _, sensor := range []string{"ebpf", "fswatch", "netwatch", "llm", "agentotel"} {
			if imp == "github.com/agentwatch/agentwatch/"+sensor {
				t.Errorf("cli imports the %s sensor; ask the supervisor", sensor)
			}
		}
	}
}
