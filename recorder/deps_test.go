package recorder_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The pure packages: what they must never link, because the recorder is a
// function of the event stream (ARCHITECTURE.md, "The house after W2.3").
var purePackages = []string{
	"github.com/agentwatch/agentwatch/recorder",
	"github.com/agentwatch/agentwatch/policy",
	"github.com/agentwatch/agentwatch/event",
}

// forbiddenDeps are sensor, network and exporter packages. An entry ending
// in "/" forbids the package and everything under it.
var forbiddenDeps = []string{
	"github.com/agentwatch/agentwatch/agentotel/",
	"github.com/agentwatch/agentwatch/llm/",
	"github.com/agentwatch/agentwatch/netwatch/",
	"github.com/agentwatch/agentwatch/ebpf/",
	"github.com/agentwatch/agentwatch/fswatch/",
	"github.com/agentwatch/agentwatch/export/",
	"github.com/agentwatch/agentwatch/store/",
	"github.com/agentwatch/agentwatch/supervisor/",
	"github.com/cilium/ebpf/",
	"google.golang.org/grpc/",
	"go.opentelemetry.io/otel/exporters/",
	"net/http/",
}

func forbidden(dep string) bool {
	for _, f := range forbiddenDeps {
		if dep == strings.TrimSuffix(f, "/") || strings.HasPrefix(dep, f) {
			return true
		}
	}
	return false
}

// TestPurePackagesImportNoSensor runs `go list -deps` (go test puts the
// toolchain's go first in PATH) and fails when the recorder, policy or
// event package depends, even indirectly, on a sensor, network or
// exporter package.
func TestPurePackagesImportNoSensor(t *testing.T) {
	for _, pkg := range purePackages {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			msg := ""
			if ee, ok := err.(*exec.ExitError); ok {
				msg = string(ee.Stderr)
			}
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, msg)
		}
		deps := strings.Fields(string(out))
		if len(deps) == 0 {
			t.Fatalf("go list -deps %s listed nothing", pkg)
		}
		var bad []string
		for _, d := range deps {
			if forbidden(d) {
				bad = append(bad, d)
			}
		}
		if len(bad) > 0 {
			t.Errorf("%s depends on %s: the pure packages import no sensor, network or exporter package (go list -deps %s)",
				pkg, strings.Join(bad, ", "), pkg)
		}
	}
}

func TestForbiddenDeps(t *testing.T) {
	for dep, want := range map[string]bool{
		"github.com/agentwatch/agentwatch/llm":              true,
		"github.com/agentwatch/agentwatch/llm/x":            true,
		"github.com/agentwatch/agentwatch/llmish":           false,
		"google.golang.org/grpc":                            true,
		"google.golang.org/grpc/codes":                      true,
		"net/http":                                          true,
		"net/http/httputil":                                 true,
		"net/netip":                                         false,
		"github.com/agentwatch/agentwatch/prices":           false,
		"github.com/agentwatch/agentwatch/storefront":       false,
		"go.opentelemetry.io/otel/exporters/otlp/otlptrace": true,
	} {
		if got := forbidden(dep); got != want {
			t.Errorf("forbidden(%q) = %v, want %v", dep, got, want)
		}
	}
}
