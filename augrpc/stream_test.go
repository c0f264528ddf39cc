package augrpc

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/activeusers/activeusers"
)

// clock is a fake clock that tests move and trackers read from any
// goroutine.
type clock struct{ sec atomic.Int64 }

func newClock() *clock {
	c := new(clock)
	c.sec.Store(t0.Unix())
	return c
}

func (c *clock) now() time.Time      { return time.Unix(c.sec.Load(), 0) }
func (c *clock) add(d time.Duration) { c.sec.Add(int64(d / time.Second)) }
func (c *clock) tracker() *activeusers.Tracker {
	return activeusers.New(activeusers.WithClock(c.now))
}

// streamer is a TestService whose bidirectional call echoes each request,
// and whose server stream sends a response each time the test asks it to.
type streamer struct {
	testpb.UnimplementedTestServiceServer
	tick chan struct{}
}

func (s *streamer) FullDuplexCall(stream testpb.TestService_FullDuplexCallServer) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.Payload}); err != nil {
			return err
		}
	}
}

func (s *streamer) StreamingOutputCall(_ *testpb.StreamingOutputCallRequest, stream testpb.TestService_StreamingOutputCallServer) error {
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case <-s.tick:
			if err := stream.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
				return err
			}
		}
	}
}

// serveStreams runs a real grpc-go server with the streamer behind opts on a
// loopback port, and returns a client.
func serveStreams(t *testing.T, s *streamer, opts ...grpc.ServerOption) testpb.TestServiceClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer(opts...)
	testpb.RegisterTestServiceServer(srv, s)
	go srv.Serve(ln)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
	})
	return testpb.NewTestServiceClient(conn)
}

// TestStreamsCountWhileOpenAndActive: a bidirectional stream and a server
// stream count while open, drop out of the 5-minute window after an idle
// hour like any account, and count again at their next message — with and
// without CountUnless.
func TestStreamsCountWhileOpenAndActive(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	for _, opts := range [][]Option{nil, {CountUnless(codes.PermissionDenied)}} {
		clk := newClock()
		tr := clk.tracker()
		s := &streamer{tick: make(chan struct{})}
		client := serveStreams(t, s, grpc.StreamInterceptor(StreamServerInterceptor(tr, FromMetadata("x-account"), opts...)))
		fiveMin := func() int { return tr.Counts(5 * time.Minute)[0] }

		ctx, cancel := context.WithCancel(context.Background())
		bidi, err := client.FullDuplexCall(as("alice"))
		require.NoError(t, err)
		watch, err := client.StreamingOutputCall(metadata.AppendToOutgoingContext(ctx, "x-account", "bob"), &testpb.StreamingOutputCallRequest{})
		require.NoError(t, err)
		exchange := func() {
			require.NoError(t, bidi.Send(&testpb.StreamingOutputCallRequest{}))
			_, err := bidi.Recv()
			require.NoError(t, err)
			s.tick <- struct{}{}
			_, err = watch.Recv()
			require.NoError(t, err)
		}

		exchange()
		assert.Equal(t, 2, fiveMin(), "%d options: both streams count while open", len(opts))
		clk.add(time.Hour)
		assert.Equal(t, 0, fiveMin(), "%d options: idle for an hour, they age out of 5 minutes", len(opts))
		assert.Equal(t, []int{2}, tr.Counts(2*time.Hour))
		exchange()
		assert.Equal(t, 2, fiveMin(), "%d options: a message an hour later counts them again", len(opts))
		clk.add(30 * time.Second)
		exchange()
		clk.add(5 * time.Minute)
		assert.Equal(t, 2, fiveMin(), "%d options: counted at the last message, not the first", len(opts))

		require.NoError(t, bidi.CloseSend())
		_, err = bidi.Recv()
		assert.Equal(t, io.EOF, err)
		cancel()
	}
}

// TestCountUnlessRefusedStream: a stream refused by the layer after the
// interceptor, before any message, does not count; one served counts at its
// first message, while still open.
func TestCountUnlessRefusedStream(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	clk := newClock()
	tr := clk.tracker()
	refuse := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if v := metadata.ValueFromIncomingContext(ss.Context(), "x-account"); len(v) > 0 && v[0] == "mallory" {
			return status.Error(codes.PermissionDenied, "no")
		}
		return h(srv, ss)
	}
	client := serveStreams(t, &streamer{}, grpc.ChainStreamInterceptor(
		StreamServerInterceptor(tr, FromMetadata("x-account"), CountUnless(codes.PermissionDenied)), refuse))

	refused, err := client.FullDuplexCall(as("mallory"))
	require.NoError(t, err)
	_, err = refused.Recv()
	assert.Equal(t, codes.PermissionDenied, status.Code(err))

	served, err := client.FullDuplexCall(as("alice"))
	require.NoError(t, err)
	require.NoError(t, served.Send(&testpb.StreamingOutputCallRequest{}))
	_, err = served.Recv()
	require.NoError(t, err)
	assert.Equal(t, []int{1}, tr.Counts(time.Hour), "alice, at her first message; not mallory")
	require.NoError(t, served.CloseSend())
	_, err = served.Recv()
	assert.Equal(t, io.EOF, err)
	assert.Equal(t, []int{1}, tr.Counts(time.Hour))
}

// TestFromMetadataTakesTheLastValue: a proxy that appends its x-account to
// one the caller sent puts its own last, and the caller's is not counted.
func TestFromMetadataTakesTheLastValue(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	tr := tracker()
	client := serve(t, grpc.UnaryInterceptor(UnaryServerInterceptor(tr, FromMetadata("x-account"))))
	// The caller sends "mallory"; the proxy appends the account it verified.
	appended := metadata.AppendToOutgoingContext(as("mallory"), "x-account", "alice")
	_, err := client.Check(appended, nil)
	require.NoError(t, err)
	assert.Equal(t, []int{1}, tr.Counts(time.Hour))
	_, err = client.Check(as("alice"), nil)
	require.NoError(t, err)
	assert.Equal(t, []int{1}, tr.Counts(time.Hour), "the appended call counted alice")
	_, err = client.Check(as("mallory"), nil)
	require.NoError(t, err)
	assert.Equal(t, []int{2}, tr.Counts(time.Hour), "and not mallory")
}
