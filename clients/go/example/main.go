// One Recommend call made twice from Go: over gRPC with stubs generated from Protos/ (go_package
// github.com/r2ec/r2ec/gen/go/r2ec/v1), and over the custom protocol of docs/protocol.md with the same generated
// messages and a few lines of framing. Prints both answers as protobuf text, then "same answer" when the response
// bytes are identical. clients/go/run-example.sh generates the stubs and runs it:
//
//	clients/go/run-example.sh GRPC_HOST:PORT CUSTOM_HOST:PORT [TOKEN]
package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	r2ecv1 "github.com/r2ec/r2ec/gen/go/r2ec/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

func request() *r2ecv1.RecommendRequest {
	return &r2ecv1.RecommendRequest{
		History: []*r2ecv1.HistoryEvent{{ItemId: "1"}, {ItemId: "2"}},
		TopK:    3,
	}
}

// protoCodec marshals with google.golang.org/protobuf. Only needed with Debian's grpc-go 1.33, whose default codec
// is the older github.com/golang/protobuf 1.3 (it cannot marshal messages of today's protoc-gen-go); with grpc-go
// from the module proxy (1.36 or later) leave it out.
type protoCodec struct{}

func (protoCodec) Marshal(v interface{}) ([]byte, error) { return proto.Marshal(v.(proto.Message)) }
func (protoCodec) Unmarshal(data []byte, v interface{}) error {
	return proto.Unmarshal(data, v.(proto.Message))
}
func (protoCodec) Name() string { return "proto" }

// viaGRPC: the generated client; deadline and token as gRPC carries them (grpc-timeout, authorization metadata).
func viaGRPC(address, token string) (*r2ecv1.RecommendResponse, error) {
	conn, err := grpc.Dial(address, grpc.WithInsecure(), // plaintext HTTP/2; grpc.WithTransportCredentials for TLS
		grpc.WithDefaultCallOptions(grpc.ForceCodec(protoCodec{})))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	return r2ecv1.NewRecommenderClient(conn).Recommend(ctx, request())
}

// frame writes one frame of docs/protocol.md: magic "R2EC", version 1, type, flags, stream id, length, payload.
func frame(w io.Writer, kind byte, flags uint16, stream uint32, payload []byte) error {
	header := make([]byte, 16)
	copy(header, "R2EC")
	header[4], header[5] = 1, kind
	binary.BigEndian.PutUint16(header[6:], flags)
	binary.BigEndian.PutUint32(header[8:], stream)
	binary.BigEndian.PutUint32(header[12:], uint32(len(payload)))
	_, err := w.Write(append(header, payload...))
	return err
}

// viaCustom: CALL (CallHeader with method, deadline, token) and MESSAGE (END_STREAM) on stream 1, then read frames
// until the TRAILER.
func viaCustom(address, token string) (*r2ecv1.RecommendResponse, error) {
	conn, err := net.DialTimeout("tcp", address, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	header := &r2ecv1.CallHeader{Method: "/r2ec.v1.Recommender/Recommend", TimeoutMs: 10000}
	if token != "" {
		header.Metadata = []*r2ecv1.MetadataEntry{{Key: "authorization", Value: "Bearer " + token}}
	}
	call, _ := proto.Marshal(header)
	body, _ := proto.Marshal(request())
	if err := frame(conn, 0x01, 0, 1, call); err != nil {
		return nil, err
	}
	if err := frame(conn, 0x02, 0x0001, 1, body); err != nil {
		return nil, err
	}
	var answer *r2ecv1.RecommendResponse
	for {
		head := make([]byte, 16)
		if _, err := io.ReadFull(conn, head); err != nil {
			return nil, err
		}
		payload := make([]byte, binary.BigEndian.Uint32(head[12:]))
		if _, err := io.ReadFull(conn, payload); err != nil {
			return nil, err
		}
		switch head[5] {
		case 0x02: // MESSAGE
			answer = &r2ecv1.RecommendResponse{}
			if err := proto.Unmarshal(payload, answer); err != nil {
				return nil, err
			}
		case 0x03: // TRAILER
			status := &r2ecv1.Status{}
			if err := proto.Unmarshal(payload, status); err != nil {
				return nil, err
			}
			if status.Code != 0 {
				return nil, fmt.Errorf("status %d: %s", status.Code, status.Message)
			}
			return answer, nil
		}
	}
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: example GRPC_HOST:PORT CUSTOM_HOST:PORT [TOKEN]")
		os.Exit(2)
	}
	token := ""
	if len(os.Args) > 3 {
		token = os.Args[3]
	}
	overGRPC, err := viaGRPC(os.Args[1], token)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gRPC:", err)
		os.Exit(1)
	}
	overCustom, err := viaCustom(os.Args[2], token)
	if err != nil {
		fmt.Fprintln(os.Stderr, "custom protocol:", err)
		os.Exit(1)
	}
	fmt.Println("gRPC:  ", prototext.Format(overGRPC))
	fmt.Println("custom:", prototext.Format(overCustom))
	a, _ := proto.MarshalOptions{Deterministic: true}.Marshal(overGRPC)
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(overCustom)
	if string(a) != string(b) {
		fmt.Println("different answers")
		os.Exit(1)
	}
	fmt.Println("same answer")
}
