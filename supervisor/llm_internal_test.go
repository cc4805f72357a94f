package supervisor

import "testing"

func TestOverrideEnv(t *testing.T) {
	got := overrideEnv([]string{"A=1", "ANTHROPIC_BASE_URL=https://gw", "B=2", "ANTHROPIC_BASE_URL=x"}, "ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
	want := []string{"A=1", "B=2", "ANTHROPIC_BASE_URL=http://127.0.0.1:9"}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}
