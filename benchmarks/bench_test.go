package main

import (
	"fmt"
	"testing"
)

// The same workloads as the program, for go test -bench and benchstat:
//
//	go test -run='^$' -bench=. -count=10 ./benchmarks | benchstat -col /impl -

func BenchmarkSeen(b *testing.B) {
	for _, c := range contenders() {
		b.Run("returning/impl="+c.Name, func(b *testing.B) {
			tr := filled(c, 1<<20)
			defer tr.Close()
			SeenReturning(b, tr, 1<<20, 16)
		})
	}
	for _, c := range contenders() {
		b.Run("new/impl="+c.Name, func(b *testing.B) { SeenNew(b, c) })
	}
}

func BenchmarkCounts(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		for _, c := range contenders() {
			if c.Name == "floor" {
				continue
			}
			b.Run(fmt.Sprintf("users=%d/impl=%s", n, c.Name), func(b *testing.B) {
				tr := filled(c, n)
				defer tr.Close()
				CountsOver(b, tr, n)
			})
		}
	}
}
