module github.com/activeusers/activeusers/benchmarks

go 1.26

require github.com/activeusers/activeusers v0.0.0

require github.com/puzpuzpuz/xsync/v4 v4.5.0 // indirect

replace github.com/activeusers/activeusers => ../
