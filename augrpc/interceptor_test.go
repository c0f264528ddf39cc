package augrpc

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/activeusers/activeusers"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func tracker() *activeusers.Tracker {
	return activeusers.New(activeusers.WithClock(func() time.Time { return t0 }))
}

// serve runs a real grpc-go server on a loopback port with the health
// service behind the interceptors, and returns a client connected to it.
func serve(t *testing.T, opts ...grpc.ServerOption) healthpb.HealthClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0") // the server takes the listener: no port race
	require.NoError(t, err)
	srv := grpc.NewServer(opts...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	hs.SetServingStatus("orders", healthpb.HealthCheckResponse_SERVING)
	go srv.Serve(ln)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
	})
	return healthpb.NewHealthClient(conn)
}

func as(account string) context.Context {
	ctx := context.Background()
	if account == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "x-account", account)
}

// TestUnaryAndStreamOverARealServer: calls over loopback, unary (Check) and
// streaming (Watch), from three accounts and anonymous callers.
func TestUnaryAndStreamOverARealServer(t *testing.T) {
	before := goleak.IgnoreCurrent()                   // the goroutines of other tests, taken now
	t.Cleanup(func() { goleak.VerifyNone(t, before) }) // after serve's cleanup
	tr := tracker()
	account := FromMetadata("x-account")
	client := serve(t,
		grpc.UnaryInterceptor(UnaryServerInterceptor(tr, account)),
		grpc.StreamInterceptor(StreamServerInterceptor(tr, account)))
	for _, a := range []string{"alice", "bob", "alice", ""} {
		resp, err := client.Check(as(a), &healthpb.HealthCheckRequest{Service: "orders"})
		require.NoError(t, err)
		assert.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.Status)
	}
	assert.Equal(t, []int{2}, tr.Counts(time.Hour), "unary: alice and bob, the anonymous call not counted")

	for _, a := range []string{"carol", "bob", ""} {
		ctx, cancel := context.WithCancel(as(a))
		stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "orders"})
		require.NoError(t, err)
		msg, err := stream.Recv()
		require.NoError(t, err)
		assert.Equal(t, healthpb.HealthCheckResponse_SERVING, msg.Status)
		cancel()
	}
	assert.Equal(t, []int{3}, tr.Counts(time.Hour), "streams: carol is new, bob was counted already")
}

// TestCountUnlessRefused: calls the handler refuses with a listed code do
// not count; others, failed or not, do.
func TestCountUnlessRefused(t *testing.T) {
	before := goleak.IgnoreCurrent()                   // the goroutines of other tests, taken now
	t.Cleanup(func() { goleak.VerifyNone(t, before) }) // after serve's cleanup
	tr := tracker()
	refuse := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		switch v := metadata.ValueFromIncomingContext(ctx, "x-account"); v[0] {
		case "mallory":
			return nil, status.Error(codes.PermissionDenied, "no")
		case "spammer":
			return nil, status.Error(codes.ResourceExhausted, "slow down")
		}
		return h(ctx, req)
	}
	client := serve(t, grpc.ChainUnaryInterceptor(
		UnaryServerInterceptor(tr, FromMetadata("x-account"), CountUnless(codes.PermissionDenied, codes.ResourceExhausted)),
		refuse))
	for _, a := range []string{"alice", "mallory", "spammer"} {
		client.Check(as(a), &healthpb.HealthCheckRequest{Service: "orders"})
	}
	_, err := client.Check(as("dave"), &healthpb.HealthCheckRequest{Service: "unknown"})
	assert.Equal(t, codes.NotFound, status.Code(err))
	assert.Equal(t, []int{2}, tr.Counts(time.Hour), "alice and dave (served, if with NotFound); not the refused")

	assert.PanicsWithValue(t, "augrpc: nil *activeusers.Tracker", func() { UnaryServerInterceptor(nil, FromMetadata("k")) })
	assert.PanicsWithValue(t, "augrpc: nil AccountFunc", func() { StreamServerInterceptor(tr, nil) })
	assert.Panics(t, func() { FromMetadata("") })
}

type accountKey struct{}

// fromContext is the account an authentication interceptor put in the
// context: what a real service would use.
func fromContext(ctx context.Context, _ string) string {
	a, _ := ctx.Value(accountKey{}).(string)
	return a
}

type stream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s stream) Context() context.Context { return s.ctx }
func (s stream) SendMsg(any) error        { return nil }
func (s stream) RecvMsg(any) error        { return nil }

// TestInterceptorsAddNoAllocation: the interceptors, around a handler, with
// the account from the context, allocate exactly what the handler alone
// does, but for a stream's wrapper and session; a stream's messages cost
// none.
func TestInterceptorsAddNoAllocation(t *testing.T) {
	tr := tracker()
	ctx := context.WithValue(context.Background(), accountKey{}, "alice")
	info := &grpc.UnaryServerInfo{FullMethod: "/orders.Orders/Get"}
	handler := func(ctx context.Context, req any) (any, error) { return req, nil }
	for _, opts := range [][]Option{nil, {CountUnless(codes.PermissionDenied)}} {
		unary := UnaryServerInterceptor(tr, fromContext, opts...)
		bare := testing.AllocsPerRun(1000, func() { handler(ctx, info) })
		wrapped := testing.AllocsPerRun(1000, func() { unary(ctx, info, info, handler) })
		assert.Equal(t, bare, wrapped, "unary, %d options", len(opts))

		var ss grpc.ServerStream = stream{ctx: ctx} // boxed once, as grpc-go hands it over
		sinfo := &grpc.StreamServerInfo{FullMethod: "/orders.Orders/Watch", IsServerStream: true}
		shandler := func(any, grpc.ServerStream) error { return nil }
		streamI := StreamServerInterceptor(tr, fromContext, opts...)
		bare = testing.AllocsPerRun(1000, func() { shandler(nil, ss) })
		wrapped = testing.AllocsPerRun(1000, func() { streamI(nil, ss, sinfo, shandler) })
		own := 2.0 // the wrapper and the session
		if len(opts) > 0 {
			own = 1 // CountUnless: no message, no session until the end
		}
		assert.Equal(t, bare+own, wrapped, "stream, %d options", len(opts))

		var perMessage float64
		streamI(nil, ss, sinfo, func(_ any, ss grpc.ServerStream) error {
			perMessage = testing.AllocsPerRun(1000, func() {
				ss.SendMsg(nil)
				ss.RecvMsg(nil)
			})
			return nil
		})
		assert.Zero(t, perMessage, "a stream's messages, %d options", len(opts))
	}
	assert.Equal(t, []int{1}, tr.Counts(time.Hour))
}

// BenchmarkUnary compares a unary call over loopback without and with the
// interceptor (account from metadata), for the allocation and time it adds.
func BenchmarkUnary(b *testing.B) {
	for _, with := range []bool{false, true} {
		name := "interceptor=none"
		if with {
			name = "interceptor=augrpc"
		}
		b.Run(name, func(b *testing.B) {
			tr := activeusers.New()
			defer tr.Close()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(b, err)
			var opts []grpc.ServerOption
			if with {
				opts = append(opts, grpc.UnaryInterceptor(UnaryServerInterceptor(tr, FromMetadata("x-account"))))
			}
			srv := grpc.NewServer(opts...)
			hs := health.NewServer()
			healthpb.RegisterHealthServer(srv, hs)
			go srv.Serve(ln)
			defer srv.Stop()
			conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			require.NoError(b, err)
			defer conn.Close()
			client := healthpb.NewHealthClient(conn)
			ctx := as("alice")
			req := &healthpb.HealthCheckRequest{}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.Check(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkInterceptor is the interceptor alone around an empty handler,
// account from the context.
func BenchmarkInterceptor(b *testing.B) {
	tr := activeusers.New()
	defer tr.Close()
	ctx := context.WithValue(context.Background(), accountKey{}, "alice")
	info := &grpc.UnaryServerInfo{FullMethod: "/orders.Orders/Get"}
	handler := func(ctx context.Context, req any) (any, error) { return req, nil }
	unary := UnaryServerInterceptor(tr, fromContext)
	b.ReportAllocs()
	for b.Loop() {
		unary(ctx, nil, info, handler)
	}
}

type planKey struct{}

// TestSegmentsOverARealServer: the plan from the context (where an
// authentication interceptor would put it) and the platform from metadata,
// over a real server, unary and streaming; the interceptors still add no
// allocation with a segment from the context; wiring mistakes panic.
func TestSegmentsOverARealServer(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	tr := activeusers.New(activeusers.WithClock(func() time.Time { return t0 }), activeusers.WithDimensions("plan", "platform"))
	account := FromMetadata("x-account")
	plan := SegmentFrom("plan", func(ctx context.Context, _ string) string { // as an authentication layer would
		if v := metadata.ValueFromIncomingContext(ctx, "x-account"); len(v) > 0 && v[0] == "alice" {
			return "pro"
		}
		return "free"
	})
	platform := SegmentFrom("platform", FromMetadata("x-platform"))
	client := serve(t,
		grpc.UnaryInterceptor(UnaryServerInterceptor(tr, account, plan, platform)),
		grpc.StreamInterceptor(StreamServerInterceptor(tr, account, platform, plan)))
	call := func(a, p string) context.Context {
		return metadata.AppendToOutgoingContext(as(a), "x-platform", p)
	}
	for _, c := range [][2]string{{"alice", "ios"}, {"bob", "android"}, {"alice", "web"}, {"", "ios"}} {
		_, err := client.Check(call(c[0], c[1]), &healthpb.HealthCheckRequest{Service: "orders"})
		require.NoError(t, err)
	}
	ctx, cancel := context.WithCancel(call("carol", "ios"))
	stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "orders"})
	require.NoError(t, err)
	_, err = stream.Recv()
	require.NoError(t, err)
	cancel()
	b := tr.CountsBy(time.Hour)
	assert.Equal(t, []int{3}, b.Overall)
	assert.Equal(t, []activeusers.ValueCounts{{Value: "free", Counts: []int{2}}, {Value: "pro", Counts: []int{1}}, {Value: activeusers.OverflowValue, Counts: []int{0}}}, b.Dimensions[0].Values)
	assert.Equal(t, []activeusers.ValueCounts{{Value: "android", Counts: []int{1}}, {Value: "ios", Counts: []int{2}}, {Value: "web", Counts: []int{1}}, {Value: activeusers.OverflowValue, Counts: []int{0}}}, b.Dimensions[1].Values)

	// No allocation of their own with a value from the context.
	ctx = context.WithValue(context.WithValue(context.Background(), accountKey{}, "alice"), planKey{}, "pro")
	fromCtx := SegmentFrom("plan", func(ctx context.Context, _ string) string { p, _ := ctx.Value(planKey{}).(string); return p })
	info := &grpc.UnaryServerInfo{FullMethod: "/orders.Orders/Get"}
	handler := func(ctx context.Context, req any) (any, error) { return req, nil }
	unary := UnaryServerInterceptor(tr, fromContext, fromCtx)
	assert.Equal(t, testing.AllocsPerRun(1000, func() { handler(ctx, info) }), testing.AllocsPerRun(1000, func() { unary(ctx, info, info, handler) }))

	assert.PanicsWithValue(t, `augrpc: SegmentFrom("region"): the tracker has no such dimension (activeusers.WithDimensions)`,
		func() { UnaryServerInterceptor(tr, account, SegmentFrom("region", fromContext)) })
	assert.PanicsWithValue(t, `augrpc: SegmentFrom("plan") given twice`, func() { StreamServerInterceptor(tr, account, plan, plan) })
	assert.PanicsWithValue(t, `augrpc: SegmentFrom("plan"): nil value function`, func() { UnaryServerInterceptor(tr, account, SegmentFrom("plan", nil)) })
}
