package recorder

import (
	"fmt"

	"github.com/agentwatch/agentwatch/telemetry"
)

// GitConfigChange is a git configuration entry that runs a command later
// (policy.GitConfigExecutes), added or changed during the run: the
// persistence rule's git half. The value is never kept (it may hold a
// secret); the digest tells two values apart.
type GitConfigChange struct {
	File     string // the configuration file
	Key      string
	Digest   string // sha256 of the new value, hex
	Restored bool   // enforce mode put the file back as it was
}

// gitConfigAlerts raises persistence (high) on the root for each change.
func (r *Recorder) gitConfigAlerts(end End) {
	for _, c := range end.GitConfig {
		outcome := "it runs later, outside the run"
		if c.Restored {
			outcome = "the file was restored to its state at the start (enforce)"
		}
		r.raise(r.root.id, end.Time, telemetry.AlertPersistence, telemetry.SeverityHigh, "git-config "+c.File+" "+c.Key,
			fmt.Sprintf("git configuration %s set in %s: git runs its value as a command; %s", c.Key, r.shown(c.File), outcome))
	}
}
