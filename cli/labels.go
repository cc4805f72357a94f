package cli

import (
	"fmt"
	"strings"

	"github.com/agentwatch/agentwatch/policy"
)

// parseLabels reads the --label flags: KEY=VALUE each, keys checked as the
// policy's attributes keys are (lower-case dotted words, no reserved
// namespace); the last of a repeated key wins. nil when none.
func parseLabels(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(flags))
	for _, f := range flags {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("--label %q: want KEY=VALUE", f)
		}
		if err := policy.CheckAttributeKey(k); err != nil {
			return nil, fmt.Errorf("--label %q: %w", f, err)
		}
		out[k] = v
	}
	return out, nil
}
