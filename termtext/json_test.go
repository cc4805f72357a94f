package termtext

import (
	"encoding/json"
	"strings"
	"testing"
)

// What encoding/json leaves raw and a terminal would act on is escaped;
// the JSON still decodes to the same strings.
func TestJSON(t *testing.T) {
	in := "csi8-\u009b2J rlo-\u202egpj.sh del-\x7f ok-é 😀 \x1b]52;c;aGk=\x07"
	enc, err := json.Marshal(map[string]string{"s": in})
	if err != nil {
		t.Fatal(err)
	}
	out := JSON(enc)
	for _, raw := range []string{"\u009b", "\u202e", "\x7f", "\x1b"} {
		if strings.Contains(string(out), raw) {
			t.Errorf("%q left raw in %s", raw, out)
		}
	}
	for _, want := range []string{`\u009b`, `\u202e`, `\u007f`, "ok-é", "😀"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("%s lacks %s", out, want)
		}
	}
	var back map[string]string
	if err := json.Unmarshal(out, &back); err != nil || back["s"] != in {
		t.Errorf("decodes to %q, %v; want %q", back["s"], err, in)
	}
	if plain := []byte(`{"a":"b"}`); string(JSON(plain)) != string(plain) {
		t.Error("plain JSON changed")
	}
}
