package activeusers

import (
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// A Session keeps one account active for as long as a long-lived exchange
// with it — a WebSocket, a stream of server-sent events, a gRPC stream, a
// protocol of your own — shows activity. A Seen when the exchange opens
// would let the account age out of the short windows while it goes on for
// hours; a Seen on every message would hash the id and touch its table each
// time. A Session records its account when it is made, and again on a call
// to its Seen in a later second than the last it recorded; the tracker keeps
// whole seconds, so a call within the same second changes nothing and costs
// one read of the clock.
//
// Middleware and the augrpc interceptors make one for each request and
// stream they serve. A Session is safe for concurrent use: a connection's
// reading and writing goroutines may both call Seen. A nil *Session (what
// Tracker.Session returns for an empty uid) does nothing.
type Session struct {
	t    *Tracker // nil until started: Seen does nothing
	key  uint64
	sets [MaxDimensions]*set // the sets of the account's segments, found once
	last atomic.Int64        // the second recorded last
}

// Session records uid as SeenIn(uid, values...) does, and returns a Session
// whose Seen records it again as the exchange goes on. It returns nil for an
// empty uid. Making a Session costs one allocation; its Seen costs none.
func (t *Tracker) Session(uid string, values ...string) *Session {
	if uid == "" {
		return nil
	}
	s := new(Session)
	s.start(t, xxhash.Sum64String(uid), values)
	return s
}

// start makes s a session of the account whose hash is key, in the segments
// values name, and records it now.
func (s *Session) start(t *Tracker, key uint64, values []string) {
	s.t, s.key, s.sets = t, key, [MaxDimensions]*set{} // s may be a pooled writer's
	for i, v := range values[:min(len(values), len(t.dims))] {
		if v != "" {
			s.sets[i] = t.dims[i].set(v)
		}
	}
	now := t.nowSec()
	s.last.Store(now)
	s.record(now)
}

// startFrom makes s a copy of o, a started session, to carry on where o
// cannot (a hijacked connection outlives the pooled writer that held o).
func (s *Session) startFrom(o *Session) {
	s.t, s.key, s.sets = o.t, o.key, o.sets
	s.last.Store(o.last.Load())
}

// Seen records the session's account as active now, if it has not been
// recorded in this second already: call it on every message, frame or
// flush.
func (s *Session) Seen() {
	if s == nil || s.t == nil {
		return
	}
	now := s.t.nowSec()
	// A clock that stepped back records nothing: what was recorded is later.
	last := s.last.Load()
	if now <= last || !s.last.CompareAndSwap(last, now) {
		return
	}
	s.record(now)
}

// record records the session's account at now, overall and in its segments.
func (s *Session) record(now int64) {
	s.t.recordSets(s.key, toSec(now), s.t.cutoff(now), s.sets[:len(s.t.dims)])
}
