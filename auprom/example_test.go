package auprom_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/activeusers/activeusers"
	"github.com/activeusers/activeusers/auprom"
)

// A collector on its own registry, with the application's namespace as a
// prefix (names should carry one) and the windows a dashboard shows. The
// window series are nested: never sum across window.
func Example() {
	t := activeusers.New()
	defer t.Close()
	t.Seen("alice")
	t.Seen("bob")

	reg := prometheus.NewRegistry()
	reg.MustRegister(auprom.MustNewCollector(t,
		auprom.WithNamespace("gateway"),
		auprom.WithWindows(5*time.Minute, 24*time.Hour, 7*24*time.Hour)))

	// What a scrape of /metrics sees:
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "gateway_active_users{") {
			fmt.Println(line)
		}
	}
	// Output:
	// gateway_active_users{window="24h"} 2
	// gateway_active_users{window="5m"} 2
	// gateway_active_users{window="7d"} 2
}
