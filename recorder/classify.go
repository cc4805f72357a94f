package recorder

import "github.com/agentwatch/agentwatch/fileclass"

// File classes (agentwatch.file.class): fileclass's, named here for the
// recorder's rules.
const (
	ClassSource    = fileclass.Source
	ClassTest      = fileclass.Test
	ClassLockfile  = fileclass.Lockfile
	ClassWorkflow  = fileclass.Workflow
	ClassSecret    = fileclass.Secret
	ClassConfig    = fileclass.Config
	ClassGenerated = fileclass.Generated
	ClassDocs      = fileclass.Docs
	ClassOther     = fileclass.Other
)

// classifyFile is fileclass.Classify: rel is the path relative to the
// workspace ("" outside it).
func classifyFile(abs, rel string, secret bool) string { return fileclass.Classify(abs, rel, secret) }
