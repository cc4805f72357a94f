package agentotel

import (
	"sync"

	"github.com/agentwatch/agentwatch/event"
)

// collector is a Config.Emit that keeps what the receiver emitted.
type collector struct {
	mu     sync.Mutex
	events []event.AgentTelemetry
}

func (c *collector) emit(e event.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, e.(event.AgentTelemetry))
}

func (c *collector) payloads(signal string) [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [][]byte
	for _, e := range c.events {
		if e.Signal == signal {
			out = append(out, e.Payload)
		}
	}
	return out
}
