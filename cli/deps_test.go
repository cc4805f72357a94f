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

// go.mod is tidy: every module the code imports is a direct requirement,
// nothing unused is listed (`go mod tidy -diff` prints what tidy would
// change and exits 1).
func TestGoModTidy(t *testing.T) {
	if testing.Short() {
		t.Skip("go mod tidy may fetch modules (-short stays offline)")
	}
	out, err := exec.Command("go", "mod", "tidy", "-diff").CombinedOutput()
	if err != nil {
		t.Fatalf("go.mod is not tidy (run go mod tidy): %v\n%s", err, out)
	}
}
