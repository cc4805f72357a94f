package llm

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestSSEParser(t *testing.T) {
	stream := ": keep-alive comment\r\n" +
		"event: message_start\r\ndata: {\"a\":1}\r\n\r\n" +
		"event: ping\ndata: {\"type\": \"ping\"}\n\n" +
		"data:first\ndata: second\n\n" + // no space after the colon; two data lines
		"event: lone-cr\rdata: x\r\r" +
		"event: empty-has-no-data\n\n" +
		"data: [DONE]\n\n" +
		"event: unterminated\ndata: {\"cut"
	want := []string{
		`message_start|{"a":1}`, `ping|{"type": "ping"}`, "|first\nsecond", "lone-cr|x", "|[DONE]",
	}
	// Every split of the stream into two reads must give the same events
	// (a \r\n may straddle reads).
	for cut := 0; cut <= len(stream); cut++ {
		var got []string
		p := &sseParser{max: 1 << 20, onEvent: func(name string, data []byte) {
			got = append(got, name+"|"+string(data))
		}}
		p.feed([]byte(stream[:cut]))
		p.feed([]byte(stream[cut:]))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("cut at %d: got %q, want %q", cut, got, want)
		}
	}
}

func TestSSEParserBounded(t *testing.T) {
	p := &sseParser{max: 1024, onEvent: func(string, []byte) {}}
	for i := 0; i < 100; i++ {
		p.feed([]byte(fmt.Sprintf("data: %s\n", strings.Repeat("y", 100))))
	}
	if !p.overflow || len(p.buf)+len(p.data) > 2048 {
		t.Errorf("an endless event was kept: overflow %v, %d bytes held", p.overflow, len(p.buf)+len(p.data))
	}
	q := &sseParser{max: 1024, onEvent: func(string, []byte) {}}
	for i := 0; i < 10000; i++ {
		q.feed([]byte("event: content_block_delta\ndata: {\"x\":1}\n\n"))
	}
	if q.overflow || cap(q.buf) > 4096 || q.events != 10000 {
		t.Errorf("a long well-formed stream grew the buffer: overflow %v cap %d events %d", q.overflow, cap(q.buf), q.events)
	}
}
