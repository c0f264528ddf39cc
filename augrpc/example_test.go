package augrpc_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/activeusers/activeusers"
	"github.com/activeusers/activeusers/augrpc"
)

// A gRPC server counting the accounts that call it. Here a trusted proxy in
// front names the caller in the x-account header; behind your own
// authentication interceptor, take the account from the context it sets.
func Example() {
	t := activeusers.New()
	defer t.Close()
	account := augrpc.FromMetadata("x-account")
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(augrpc.UnaryServerInterceptor(t, account)),
		grpc.ChainStreamInterceptor(augrpc.StreamServerInterceptor(t, account)),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Stop()

	conn, _ := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	for _, who := range []string{"alice", "bob", "alice"} {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-account", who)
		client.Check(ctx, &healthpb.HealthCheckRequest{})
	}
	fmt.Println(t.Counts(time.Hour))
	// Output: [2]
}
