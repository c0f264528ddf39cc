package main

import (
	"bytes"
	"errors"
	"strconv"
	"unicode/utf8"
)

// A field path names one value in a JSON log line: object keys from the top,
// separated by dots ("request.headers.X-Account"). A key that itself holds
// dots (zap's "http.request.id") is matched whole first. The value must be
// a string or a number; an array takes its first element (Caddy logs each
// header's values as an array).
//
// findField scans the line once, skipping every value it does not need
// without building it: replay reads hundreds of thousands of lines a second
// and needs two or three fields of each.

var (
	errNoField   = errors.New("no such field")
	errNotJSON   = errors.New("not a JSON object")
	errBadJSON   = errors.New("malformed JSON")
	errNotScalar = errors.New("not a string or a number")
)

// findField returns the value at path in line (a JSON object) — a string's
// content, unescaped, or a number's text — and whether it was a string.
func findField(line []byte, path string) (v []byte, str bool, err error) {
	s := scanner{b: line}
	s.space()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return nil, false, errNotJSON
	}
	for {
		// The object at s.i: find the key that is path whole, or its first
		// component.
		found, rest, err := s.findKey(path)
		if err != nil {
			return nil, false, err
		}
		if !found {
			return nil, false, errNoField
		}
		s.space()
		if rest == "" {
			return s.scalar()
		}
		if s.i >= len(s.b) || s.b[s.i] != '{' {
			return nil, false, errNoField // a component names something that is not an object
		}
		path = rest
	}
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

// findKey reads the object at s.i up to the value of the key that is path
// whole, or path's first component, and returns with s.i at that value and
// the rest of the path ("" if the whole path matched). If the object has
// neither, it returns found false.
func (s *scanner) findKey(path string) (found bool, rest string, err error) {
	first, after, dotted := cut(path)
	s.i++ // {
	for {
		s.space()
		if s.i < len(s.b) && s.b[s.i] == '}' {
			return false, "", nil
		}
		key, esc, err := s.rawString()
		if err != nil {
			return false, "", err
		}
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false, "", errBadJSON
		}
		s.i++
		s.space()
		if esc { // rare: compare the key unescaped
			key = unescape(key)
		}
		switch {
		case string(key) == path:
			return true, "", nil
		case dotted && string(key) == first:
			return true, after, nil
		}
		if err := s.skip(); err != nil {
			return false, "", err
		}
		s.space()
		if s.i < len(s.b) && s.b[s.i] == ',' {
			s.i++
			continue
		}
		if s.i < len(s.b) && s.b[s.i] == '}' {
			return false, "", nil
		}
		return false, "", errBadJSON
	}
}

func cut(path string) (first, rest string, ok bool) {
	for i := 0; i < len(path); i++ {
		if path[i] == '.' {
			return path[:i], path[i+1:], true
		}
	}
	return path, "", false
}

// rawString reads the string at s.i and returns its content as written, and
// whether it holds escapes.
func (s *scanner) rawString() (b []byte, esc bool, err error) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false, errBadJSON
	}
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		switch s.b[j] {
		case '\\':
			esc = true
			j++
		case '"':
			s.i = j + 1
			return s.b[start:j], esc, nil
		}
	}
	return nil, false, errBadJSON
}

// skip moves past the value at s.i.
func (s *scanner) skip() error {
	if s.i >= len(s.b) {
		return errBadJSON
	}
	switch s.b[s.i] {
	case '"':
		_, _, err := s.rawString()
		return err
	case '{', '[':
		depth := 0
		for ; s.i < len(s.b); s.i++ {
			switch s.b[s.i] {
			case '"':
				if _, _, err := s.rawString(); err != nil {
					return err
				}
				s.i--
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					s.i++
					return nil
				}
			}
		}
		return errBadJSON
	default: // a number, true, false, null
		start := s.i
		for s.i < len(s.b) && s.b[s.i] != ',' && s.b[s.i] != '}' && s.b[s.i] != ']' && s.b[s.i] != ' ' {
			s.i++
		}
		if s.i == start {
			return errBadJSON
		}
		return nil
	}
}

// scalar returns the string or number at s.i (the first element of an
// array).
func (s *scanner) scalar() ([]byte, bool, error) {
	if s.i < len(s.b) && s.b[s.i] == '[' {
		s.i++
		s.space()
	}
	if s.i >= len(s.b) {
		return nil, false, errBadJSON
	}
	switch c := s.b[s.i]; {
	case c == '"':
		v, esc, err := s.rawString()
		if err != nil {
			return nil, false, err
		}
		if esc {
			v = unescape(v)
		}
		return v, true, nil
	case c == '-' || c >= '0' && c <= '9':
		start := s.i
		for s.i < len(s.b) && bytes.IndexByte([]byte("+-.eE0123456789"), s.b[s.i]) >= 0 {
			s.i++
		}
		return s.b[start:s.i], false, nil
	}
	return nil, false, errNotScalar
}

// unescape decodes a JSON string's escapes; one it cannot decode is kept
// as written.
func unescape(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 == len(b) {
			out = append(out, b[i])
			continue
		}
		i++
		switch b[i] {
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case 'r':
			out = append(out, '\r')
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'u':
			if i+4 < len(b) {
				if r, err := strconv.ParseUint(string(b[i+1:i+5]), 16, 16); err == nil {
					out = utf8.AppendRune(out, rune(r))
					i += 4
					continue
				}
			}
			out = append(out, '\\', 'u')
		default: // " \ /
			out = append(out, b[i])
		}
	}
	return out
}
