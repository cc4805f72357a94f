package recorder

import (
	"testing"

	"github.com/agentwatch/agentwatch/telemetry"
	"go.opentelemetry.io/otel/attribute"
)

// TestLabelsMerge: the policy's attributes and --label (RunInfo.Attributes)
// are one set of labels on the root and on the resource, the flag's value
// winning on the same key.
func TestLabelsMerge(t *testing.T) {
	info := runInfo()
	info.Policy = mustPolicy(t, "observe", "") // attributes: {org: acme}
	info.Policy.Attributes["team"] = "from-policy"
	info.Policy.Attributes["cost_center"] = "cc-7"
	info.Attributes = map[string]string{"team": "platform", "env": "ci"}
	tr := record(info, agent(), End{Time: at(100)})
	root := tr.Root()
	want := map[attribute.Key]string{
		"agentwatch.label.org":         "acme",
		"agentwatch.label.team":        "platform", // the flag's, over the policy's
		"agentwatch.label.cost_center": "cc-7",
		"agentwatch.label.env":         "ci",
	}
	wantAttrs(t, root, want)
	n := 0
	for _, kv := range root.Attrs {
		if kv.Key == "agentwatch.label.team" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("agentwatch.label.team appears %d times on the root, want once", n)
	}
	res := map[attribute.Key]string{}
	for _, kv := range tr.Resource {
		if _, dup := res[kv.Key]; dup {
			t.Errorf("resource has %s twice", kv.Key)
		}
		res[kv.Key] = kv.Value.Emit()
	}
	for k, v := range want {
		if res[k] != v {
			t.Errorf("resource %s = %q, want %q", k, res[k], v)
		}
	}
	if res[telemetry.ServiceInstanceID] != "run-7f3a" {
		t.Errorf("resource service.instance.id = %q", res[telemetry.ServiceInstanceID])
	}

	// Without either, no label at all.
	info = runInfo()
	info.Attributes = nil
	for _, kv := range record(info, agent(), End{Time: at(100)}).Root().Attrs {
		if len(kv.Key) > len(telemetry.LabelPrefix) && string(kv.Key[:len(telemetry.LabelPrefix)]) == telemetry.LabelPrefix {
			t.Errorf("label %s without a policy attribute or --label", kv.Key)
		}
	}
}
