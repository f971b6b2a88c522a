package redis

import (
	"fmt"
	"slices"
	"strings"

	"github.com/jaego/jaego/internal/inventory"
)

// Mover implements inventory.TailFeed: the cursor is read once, and each batch moves it and
// writes it (a webhook deliverer moves one for every message it forms: reading it again
// each time was a fifth of a batch-100 delivery's CPU).
func (f *Feed) Mover(cursor string) (inventory.Mover, error) { return newMover(cursor) }

// Advance implements inventory.TailFeed.
func (f *Feed) Advance(cursor string, changes []inventory.Change) ([]inventory.Change, string, error) {
	m, err := newMover(cursor)
	if err != nil {
		return nil, "", err
	}
	var kept []inventory.Change
	for i := range changes {
		past, err := m.past(&changes[i])
		if err != nil {
			return nil, "", err
		}
		if past {
			kept = append(kept, changes[i])
		}
	}
	return kept, m.String(), nil
}

// mover is a cursor being moved: its range, and its streams in key order, each with its
// position read into numbers once. It writes the cursor from those numbers (the binary
// form's writer), not from strings to read again.
type mover struct {
	from, to int64
	done     []string
	doneAt   []streamAt // done's streams (g, day)
	keys     []string   // the streams, sorted
	at       []streamAt // keys[i]'s position
	index    map[string]int
	round    uint64 // Past's calls: a stream seen in this one has seen == round (64 bits: never wraps)
	odd      bool   // the range or a done stream is not in the binary form's reach
	buf      []byte // String's
}

// streamAt is a stream's position: its group and day, and the id of the last change past.
type streamAt struct {
	g       uint64
	day     int64
	ms, seq uint64
	id      string
	seen    uint64
	keyOK   bool // g and day are the key (the binary form holds it)
	idOK    bool // ms and seq are the id, likewise
}

func newMover(cursor string) (*mover, error) {
	c, err := ParseCursor(cursor)
	if err != nil {
		return nil, err
	}
	m := &mover{from: c.From, to: c.To, done: c.Done, keys: c.sortedKeys(), index: make(map[string]int, len(c.Pos)),
		odd: !rangeFits(c.From, c.To)}
	m.at = make([]streamAt, len(m.keys))
	for i, k := range m.keys {
		m.index[k] = i
		if m.at[i], err = newStreamAt(k, c.Pos[k]); err != nil {
			return nil, err
		}
	}
	for _, k := range c.Done {
		g, day, ok := splitStream(k)
		m.odd = m.odd || !ok
		m.doneAt = append(m.doneAt, streamAt{g: g, day: day})
	}
	return m, nil
}

func newStreamAt(key, id string) (streamAt, error) {
	g, day, okKey := splitStream(key)
	ms, seq, okID := splitID(id)
	s := streamAt{g: g, day: day, ms: uint64(ms), seq: seq, id: id, keyOK: okKey, idOK: okID}
	if !okID {
		var err error
		if s.ms, s.seq, err = parseID(id); err != nil {
			return s, err
		}
	}
	return s, nil
}

// Past implements inventory.Mover. Only a stream's last change in changes can move the
// cursor on it (a stream's changes come in its order), so changes are walked from the last
// one back and each stream's id is read once: a third of the cost of moving past every one
// (BenchmarkMoverPast).
func (m *mover) Past(changes []inventory.Change) (string, error) {
	m.round++
	for i := len(changes) - 1; i >= 0; i-- {
		_, sub, _ := strings.Cut(changes[i].ID, "/")
		if k, ok := m.index[sub]; ok && m.at[k].seen == m.round {
			continue
		}
		if _, err := m.past(&changes[i]); err != nil {
			return "", err
		}
	}
	return m.String(), nil
}

// past moves the cursor past ch, when it is not yet past it.
func (m *mover) past(ch *inventory.Change) (bool, error) {
	id, sub, ok := strings.Cut(ch.ID, "/")
	ms, seq, idOK := splitID(id)
	next := streamAt{ms: uint64(ms), seq: seq, id: id, idOK: idOK, seen: m.round}
	var err error
	if !idOK {
		next.ms, next.seq, err = parseID(id)
	}
	if !ok || err != nil {
		return false, fmt.Errorf("change id %q is not id/group/day", ch.ID)
	}
	k, had := m.index[sub]
	if had {
		next.g, next.day, next.keyOK = m.at[k].g, m.at[k].day, m.at[k].keyOK
		m.at[k].seen = m.round
		ms, seq := m.at[k].ms, m.at[k].seq
		if next.ms < ms || next.ms == ms && next.seq <= seq {
			return false, nil
		}
		m.at[k] = next
		return true, nil
	}
	if ms, seq := startOf(m.from); next.ms < ms || next.ms == ms && next.seq <= seq {
		return false, nil
	}
	next.g, next.day, next.keyOK = splitStream(sub)
	k, _ = slices.BinarySearch(m.keys, sub)
	m.keys = slices.Insert(m.keys, k, sub)
	m.at = slices.Insert(m.at, k, next)
	for j := k; j < len(m.keys); j++ {
		m.index[m.keys[j]] = j
	}
	return true, nil
}

// String writes the cursor.
func (m *mover) String() string {
	plain := !m.odd
	for i := range m.at {
		plain = plain && m.at[i].keyOK && m.at[i].idOK
	}
	if !plain {
		c := &Cursor{From: m.from, To: m.to, Pos: make(map[string]string, len(m.keys)), Done: m.done}
		for i, k := range m.keys {
			c.Pos[k] = m.at[i].id
		}
		return c.string(m.keys)
	}
	w := newBinWriter(m.buf[:0], m.from, m.to, len(m.at))
	for i := range m.at {
		s := &m.at[i]
		w.stream(s.g, s.day, int64(s.ms), s.seq)
	}
	w.doneCount(len(m.doneAt))
	for i := range m.doneAt {
		w.done(m.doneAt[i].g, m.doneAt[i].day)
	}
	m.buf = w.b
	return w.String()
}
