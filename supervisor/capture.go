package supervisor

// Content capture tiers (telemetry.md): metadata unless the person running
// agentwatch asks for full capture with --capture-full DURATION. A policy
// saying capture.content: full is not enough on its own — full capture
// always has an expiry and a visible notice, so a forgotten policy line
// cannot turn it on silently.
//
// In full capture the supervisor keeps a bounded copy of the root
// process's stdout and stderr (what it relays to the user; the output of
// the commands the agent runs goes to the agent, not to us, and is not
// captured) and hands the llm proxy the content redactor with the expiry.

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/agentwatch/agentwatch/llm"
	"github.com/agentwatch/agentwatch/policy"
	"github.com/agentwatch/agentwatch/recorder"
)

// outputMargin is kept past capture.output_bytes so the recorder redacts
// before it cuts: a secret straddling the bound is removed whole.
const outputMargin = 4096

// capturePlan is the run's content tier, decided before the child starts.
type capturePlan struct {
	rec recorder.Capture
	out *outputCapture // nil in metadata mode
}

// planCapture decides the tier and prints the notice (or, when the policy
// asks for full capture without the flag, why it stays metadata).
func planCapture(pol *policy.Policy, full time.Duration, now time.Time, stderr io.Writer) capturePlan {
	outBytes := pol.Capture.OutputBytes
	if outBytes <= 0 {
		outBytes = recorder.DefaultOutputBytes
	}
	c := capturePlan{rec: recorder.Capture{OutputBytes: outBytes}}
	if full <= 0 {
		if pol.Capture.Content == "full" {
			fmt.Fprintf(stderr, "agentwatch: the policy asks for full content capture; it takes --capture-full DURATION (an expiry) on the command line: recording metadata only\n")
		}
		return c
	}
	c.rec.Full = true
	c.rec.Until = now.Add(full)
	c.out = &outputCapture{limit: outBytes + outputMargin, until: c.rec.Until}
	fmt.Fprintf(stderr, "agentwatch: FULL content capture until %s: prompts, responses, tool arguments and command output are recorded (redacted)\n",
		c.rec.Until.Local().Format(time.RFC3339))
	return c
}

// llm is the proxy's capture configuration.
func (c capturePlan) llm() llm.Capture {
	if !c.rec.Full {
		return llm.Capture{}
	}
	return llm.Capture{Full: true, Until: c.rec.Until} // the recorder redacts what it captures
}

// tee returns w plus the output copy (full capture), or w unchanged.
func (c capturePlan) tee(w io.Writer) io.Writer {
	if c.out == nil {
		return w
	}
	if w == nil {
		w = io.Discard
	}
	return io.MultiWriter(w, c.out)
}

// fill puts the captured output into end.
func (c capturePlan) fill(end *recorder.End) {
	if c.out == nil {
		return
	}
	end.Output, end.OutputTotal = c.out.bytes()
}

// outputCapture keeps the first limit bytes written before until, and
// counts everything. Writes never fail: it must not disturb the relay.
type outputCapture struct {
	mu    sync.Mutex
	limit int
	until time.Time
	buf   []byte
	total int64
	now   func() time.Time // tests
}

func (o *outputCapture) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.total += int64(len(p))
	now := time.Now
	if o.now != nil {
		now = o.now
	}
	if room := o.limit - len(o.buf); room > 0 && !now().After(o.until) {
		o.buf = append(o.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (o *outputCapture) bytes() ([]byte, int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]byte(nil), o.buf...), o.total
}
