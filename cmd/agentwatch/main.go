// Command agentwatch observes a coding agent's whole process tree and
// records one OpenTelemetry trace per run. Everything lives in package cli.
package main

import (
	"os"

	"github.com/agentwatch/agentwatch/cli"
)

func main() { os.Exit(cli.Main()) }
