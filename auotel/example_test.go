package auotel_test

import (
	"context"
	"fmt"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/activeusers/activeusers"
	"github.com/activeusers/activeusers/auotel"
)

// Register on a meter of the application's MeterProvider; every collection
// then makes one Counts call. A ManualReader stands in for an exporter here.
func Example() {
	t := activeusers.New()
	defer t.Close()
	t.Seen("alice")
	t.Seen("bob")

	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())
	reg, err := auotel.Register(provider.Meter("gateway"), t, auotel.WithWindows(5*time.Minute, 24*time.Hour))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reg.Unregister()

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		fmt.Println(err)
		return
	}
	m := rm.ScopeMetrics[0].Metrics[0]
	fmt.Println(m.Name, m.Unit)
	for _, p := range m.Data.(metricdata.Gauge[int64]).DataPoints {
		w, _ := p.Attributes.Value(auotel.DefaultWindowAttribute)
		fmt.Printf("%s=%s %d\n", auotel.DefaultWindowAttribute, w.AsString(), p.Value)
	}
	// Unordered output:
	// activeusers.count {user}
	// activeusers.window=5m 2
	// activeusers.window=24h 2
}
