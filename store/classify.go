package store

import (
	"path"

	"github.com/agentwatch/agentwatch/fileclass"
)

// classifyRel classes a workspace-relative path that only the workspace
// evidence names (git saw it change, no sensor did) by the recorder's
// table, with the built-in secret patterns standing in for the policy
// match a sensor's span would carry.
func classifyRel(rel string) string {
	return fileclass.Classify(rel, rel, fileclass.LikelySecret(path.Base(rel)))
}

// changeClass maps a file class to its change class (ChangeClasses, or
// ChangeOther); "" for generated files, which are not counted.
func changeClass(rel, fileClass string) string {
	if fileClass != fileclass.Secret && fileclass.IsDependencyManifest(path.Base(rel)) {
		return ChangeDeps
	}
	switch fileClass {
	case fileclass.Source:
		return ChangeCode
	case fileclass.Test:
		return ChangeTests
	case fileclass.Lockfile:
		return ChangeDeps
	case fileclass.Workflow:
		return ChangeWorkflows
	case fileclass.Secret:
		return ChangeSecrets
	case fileclass.Config:
		return ChangeConfig
	case fileclass.Docs:
		return ChangeDocs
	case fileclass.Generated:
		return ""
	}
	return ChangeOther
}
