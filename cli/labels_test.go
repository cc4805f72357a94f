package cli

import (
	"reflect"
	"strings"
	"testing"
)

func TestRunLabels(t *testing.T) {
	f := &fakeRun{}
	code, _, stderr := execute(t, f, "run", "--store", "/s", "--label", "team=platform", "--label", "org=acme,inc",
		"--label", "cost.center=a=b", "--label", "team=infra", "--", "claude", "--label", "x")
	if code != 0 || !f.called {
		t.Fatalf("exit %d, called %v; stderr:\n%s", code, f.called, stderr)
	}
	// Repeatable, the value is everything after the first "=" (commas
	// too), the last of a repeated key wins, and a --label after the
	// command is the command's.
	want := map[string]string{"team": "infra", "org": "acme,inc", "cost.center": "a=b"}
	if !reflect.DeepEqual(f.opts.Labels, want) {
		t.Errorf("labels %v, want %v", f.opts.Labels, want)
	}
	if !reflect.DeepEqual(f.opts.Argv, []string{"claude", "--label", "x"}) {
		t.Errorf("argv %q", f.opts.Argv)
	}

	f = &fakeRun{}
	execute(t, f, "run", "--store", "/s", "--", "true")
	if f.opts.Labels != nil {
		t.Errorf("no --label gave labels %v", f.opts.Labels)
	}
}

func TestRunLabelErrors(t *testing.T) {
	for _, tt := range []struct{ label, msg string }{
		{"Team=x", `agentwatch: --label "Team=x": bad attribute name "Team"`},
		{"team", `agentwatch: --label "team": want KEY=VALUE`},
		{"=x", `agentwatch: --label "=x": bad attribute name ""`},
		{"agentwatch.run.id=x", `agentwatch: --label "agentwatch.run.id=x": attribute "agentwatch.run.id" is in the reserved agentwatch.* namespace`},
		{"vcs.repository.name=x", `reserved vcs.* namespace`},
		{"team x=y", `bad attribute name "team x"`},
	} {
		t.Run(tt.label, func(t *testing.T) {
			f := &fakeRun{}
			code, stdout, stderr := execute(t, f, "run", "--store", "/s", "--label", "ok=1", "--label", tt.label, "--", "true")
			if code != ExitUsage {
				t.Errorf("exit %d, want %d", code, ExitUsage)
			}
			if f.called {
				t.Error("the command ran despite a bad label")
			}
			if !strings.Contains(stderr, tt.msg) || strings.Count(strings.TrimRight(stderr, "\n"), "\n") != 0 || strings.Contains(stderr, "Usage:") {
				t.Errorf("stderr = %q, want one line with %q", stderr, tt.msg)
			}
			if stdout != "" {
				t.Errorf("stdout = %q", stdout)
			}
		})
	}
}
