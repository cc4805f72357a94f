package recorder

import (
	"slices"
	"strconv"
	"testing"

	"github.com/agentwatch/agentwatch/event"
	"github.com/agentwatch/agentwatch/telemetry"
)

// A command's log says which shell ran it and where it connected: its
// distinct destinations, by name when the run knew one, first seen first,
// capped, with the uncapped count.
func TestCommandShellAndDestinations(t *testing.T) {
	evs := []event.Event{
		exec(1, 100, 1, "/usr/bin/claude", ws, "claude"),
		fork(2, 200, 100), exec(3, 200, 100, "/usr/bin/bash", ws, "bash", "-c", "curl x; curl y"),
		fork(4, 300, 200), exec(5, 300, 200, "/usr/bin/curl", ws, "curl", "https://api.example.com"),
		conn(6, 300, event.TCP, "203.0.113.7:443", 0, "api.example.com"),
		conn(7, 300, event.TCP, "203.0.113.7:443", 0, "api.example.com"), // the same destination again
		conn(8, 300, event.TCP, "198.51.100.9:8080", 0, ""),
		exit(9, 300, 0, 0),
	}
	for i := range maxDestinations + 2 { // past the cap
		evs = append(evs, conn(10+i, 200, event.UDP, "192.0.2.1:"+strconv.Itoa(1000+i), 0, ""))
	}
	evs = append(evs, exit(40, 200, 0, 0), exit(41, 100, 0, 0))
	tr := record(runInfo(), evs, End{Time: at(50)})
	var curl, bash *telemetry.Span
	for i := range tr.Spans {
		s := &tr.Spans[i]
		switch attrString(s, telemetry.ProcessExecutableName) {
		case "curl":
			curl = s
		case "bash":
			bash = s
		}
	}
	if curl == nil || bash == nil {
		t.Fatal("no curl or bash span")
	}
	if got := attrString(curl, telemetry.CommandShell); got != "bash" {
		t.Errorf("curl's shell %q, want bash", got)
	}
	if _, ok := bash.Attr(telemetry.CommandShell); ok {
		t.Errorf("bash, exec'd by the agent itself, has a shell: %q", attrString(bash, telemetry.CommandShell))
	}
	v, _ := curl.Attr(telemetry.NetworkDestinations)
	if got := v.AsStringSlice(); !slices.Equal(got, []string{"api.example.com:443", "198.51.100.9:8080"}) {
		t.Errorf("curl's destinations %q", got)
	}
	if n, _ := curl.Attr(telemetry.NetworkDestinationsCount); n.AsInt64() != 2 {
		t.Errorf("curl's destination count %d, want 2", n.AsInt64())
	}
	v, _ = bash.Attr(telemetry.NetworkDestinations)
	n, _ := bash.Attr(telemetry.NetworkDestinationsCount)
	if got := v.AsStringSlice(); len(got) != maxDestinations || got[0] != "192.0.2.1:1000" || n.AsInt64() != maxDestinations+2 {
		t.Errorf("bash's destinations %q (count %d): want the first %d of %d", got, n.AsInt64(), maxDestinations, maxDestinations+2)
	}
}

// Every command says which output policy applied: none in the metadata
// tier; in full capture the top command keeps the run's output (cut to
// the bound) and the others' is part of it.
func TestCommandOutputPolicy(t *testing.T) {
	evs := []event.Event{
		exec(1, 100, 1, "/usr/bin/bash", ws, "bash", "-c", "echo hi; ls"),
		fork(2, 200, 100), exec(3, 200, 100, "/usr/bin/ls", ws, "ls"), exit(4, 200, 0, 0),
		exit(5, 100, 0, 0),
	}
	policies := func(tr *telemetry.Trace) map[string]string {
		out := map[string]string{}
		for i := range tr.Spans {
			s := &tr.Spans[i]
			if name := attrString(s, telemetry.ProcessExecutableName); name != "" && s.Type() != telemetry.SpanAgentRun {
				out[name] = attrString(s, telemetry.CommandOutputCapture)
			}
		}
		return out
	}
	meta := record(runInfo(), evs, End{Time: at(10), Output: []byte("hi\n"), OutputTotal: 3})
	if got := policies(meta); got["bash"] != "none" || got["ls"] != "none" {
		t.Errorf("metadata tier: %v, want none for every command", got)
	}
	info := runInfo()
	info.Capture = Capture{Full: true, OutputBytes: 2}
	full := record(info, evs, End{Time: at(10), Output: []byte("hi\n"), OutputTotal: 3})
	if got := policies(full); got["bash"] != "kept" || got["ls"] != "run" {
		t.Errorf("full capture: %v, want bash kept and ls run", got)
	}
	for i := range full.Spans {
		s := &full.Spans[i]
		if attrString(s, telemetry.CommandOutputCapture) == "kept" {
			if n, _ := s.Attr(telemetry.CommandOutputLimit); n.AsInt64() != 2 || attrString(s, telemetry.CommandOutput) != "hi" {
				t.Errorf("kept: limit %d, output %q; want 2 and %q", n.AsInt64(), attrString(s, telemetry.CommandOutput), "hi")
			}
		}
	}
}
