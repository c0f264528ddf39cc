package main

import (
	"bytes"
	"errors"
)

var (
	errNotCLF = errors.New("not the common log format: expected host ident user [time] \"request\" status bytes")
	errNoUser = errors.New("no authenticated user (%u is -)")
)

// parseCLF returns the authenticated user (%u) and the time (%t) of a line
// of the common or combined log format:
//
//	127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /index.html HTTP/1.0" 200 2326
func parseCLF(line []byte) (user, when []byte, err error) {
	rest := line
	var fields [3][]byte
	for i := range fields {
		j := bytes.IndexByte(rest, ' ')
		if j <= 0 {
			return nil, nil, errNotCLF
		}
		fields[i], rest = rest[:j], rest[j+1:]
	}
	if len(rest) == 0 || rest[0] != '[' {
		return nil, nil, errNotCLF
	}
	end := bytes.IndexByte(rest, ']')
	if end < 0 {
		return nil, nil, errNotCLF
	}
	if bytes.Equal(fields[2], []byte("-")) {
		return nil, nil, errNoUser
	}
	return fields[2], rest[1:end], nil
}
