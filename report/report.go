// Package report renders a stored run for people (a tree with durations,
// exit codes and counts) and for programs (JSON). It reads traces; it never
// changes them.
package report

import (
	"io"

	"github.com/agentwatch/agentwatch/store"
	"github.com/agentwatch/agentwatch/telemetry"
)

// Tree writes the run as an indented tree.
func Tree(w io.Writer, tr *telemetry.Trace) error { return nil }

// JSON writes the run as one JSON document: the summary and nested spans.
func JSON(w io.Writer, tr *telemetry.Trace) error { return nil }

// Runs writes the run list as a table.
func Runs(w io.Writer, runs []store.Run) error { return nil }
