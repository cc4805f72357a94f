package agentotel

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// DefaultMaxRequestElements bounds the elements of one export request:
// messages and repeated values in protobuf, objects, arrays and values in
// JSON. The byte limit alone does not bound memory: an empty span is 2
// bytes on the wire and a few hundred as a Go struct, so one 16 MB request
// of them took 2.6 GB to decode (12 MB of JSON "{}," 2 GB). A batch of 512
// spans or log records with 20 attributes each is about 60,000 elements.
const DefaultMaxRequestElements = 1 << 18

// maxRequestDepth bounds message nesting (AnyValue lists and maps nest
// without end); protobuf's own limit is 10,000.
const maxRequestDepth = 64

var (
	errTooManyElements = errors.New("too many elements")
	errTooDeep         = fmt.Errorf("nested deeper than %d", maxRequestDepth)
)

// checkProtoBudget walks the wire form of a message of type md without
// decoding it, counting its messages and repeated values against max and
// its nesting against maxRequestDepth. Malformed bytes are left to
// proto.Unmarshal to refuse.
func checkProtoBudget(b []byte, md protoreflect.MessageDescriptor, max int) error {
	budget := max
	if err := scanProto(b, md, 0, &budget); err != nil {
		return fmt.Errorf("request refused: %w (the limit is %d elements, nesting %d)", err, max, maxRequestDepth)
	}
	return nil
}

func scanProto(b []byte, md protoreflect.MessageDescriptor, depth int, budget *int) error {
	if depth > maxRequestDepth {
		return errTooDeep
	}
	fields := md.Fields()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil
		}
		b = b[n:]
		fd := fields.ByNumber(num)
		if fd != nil && (fd.IsList() || fd.Message() != nil) {
			if *budget--; *budget < 0 {
				return errTooManyElements
			}
		}
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil
		}
		b = b[n:]
		if fd != nil && fd.Kind() == protoreflect.MessageKind {
			if err := scanProto(v, fd.Message(), depth+1, budget); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkJSONBudget counts the objects, arrays and values of a JSON text
// (outside strings) against max, and its nesting against maxRequestDepth,
// before encoding/json builds a map for every object.
func checkJSONBudget(b []byte, max int) error {
	elems, depth := 0, 0
	inString, escaped := false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			if depth++; depth > 2*maxRequestDepth { // an OTLP message level is an object and often an array
				return fmt.Errorf("request refused: %w", errTooDeep)
			}
			elems++
		case '}', ']':
			depth--
		case ',':
			elems++
		default:
			continue
		}
		if elems > max {
			return fmt.Errorf("request refused: %w (the limit is %d elements)", errTooManyElements, max)
		}
	}
	return nil
}

// budgetCodec is gRPC's proto codec with checkProtoBudget before each
// decode: gRPC bounds the message's bytes (MaxRecvMsgSize), not what they
// decode to.
type budgetCodec struct {
	encoding.CodecV2
	max int
}

func newBudgetCodec(max int) budgetCodec {
	return budgetCodec{CodecV2: encoding.GetCodecV2(grpcproto.Name), max: max}
}

func (c budgetCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	var b []byte
	if len(data) == 1 {
		b = data[0].ReadOnlyData()
	} else {
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		b = buf.ReadOnlyData()
	}
	if err := checkProtoBudget(b, m.ProtoReflect().Descriptor(), c.max); err != nil {
		return err
	}
	return c.CodecV2.Unmarshal(data, v)
}
