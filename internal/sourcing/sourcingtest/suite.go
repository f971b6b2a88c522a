// Package sourcingtest holds the shared suites every store directory and every saga log
// must pass (Redis standalone, Cluster and embedded; SQLite and PostgreSQL).
package sourcingtest

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/sourcing"
)

// Seoul is a directory of real places: Gangnam, Hongdae, Myeongdong, Jamsil (pickup only),
// Yeouido (closed).
func Seoul() []sourcing.Store {
	return []sourcing.Store{
		{ID: "GN", Name: "Gangnam", Lat: 37.4979, Lon: 127.0276, Capabilities: []string{sourcing.Pickup, sourcing.SameDay}, Status: sourcing.Open},
		{ID: "HD", Name: "Hongdae", Lat: 37.5563, Lon: 126.9236, Capabilities: []string{sourcing.Pickup, sourcing.SameDay}, Status: sourcing.Open},
		{ID: "MD", Name: "Myeongdong", Lat: 37.5636, Lon: 126.9826, Capabilities: []string{sourcing.SameDay}, Status: sourcing.Open},
		{ID: "JS", Name: "Jamsil", Lat: 37.5133, Lon: 127.1001, Capabilities: []string{sourcing.Pickup}, Status: sourcing.Open},
		{ID: "YD", Name: "Yeouido", Lat: 37.5219, Lon: 126.9245, Capabilities: []string{sourcing.Pickup, sourcing.SameDay}, Status: sourcing.Closed},
	}
}

// CityHall is a point in the middle of them.
const CityHallLat, CityHallLon = 37.5663, 126.9779

// Directory runs the directory contract on a fresh, empty directory of newDir.
func Directory(t *testing.T, newDir func(t *testing.T) sourcing.Directory) {
	ctx := context.Background()
	t.Run("get", func(t *testing.T) {
		t.Parallel()
		d := newDir(t)
		if _, err := d.Get(ctx, "GN"); jaego.CodeOf(err) != jaego.CodeNotFound {
			t.Fatalf("unknown store: %v, want not_found", err)
		}
		for _, s := range Seoul() {
			mustPut(t, d, s)
		}
		got, err := d.Get(ctx, "HD")
		if err != nil || got.Name != "Hongdae" || got.Lat != 37.5563 || got.Lon != 126.9236 || len(got.Capabilities) != 2 || got.Status != sourcing.Open {
			t.Fatalf("HD: %+v %v", got, err)
		}
		moved := Seoul()[1]
		moved.Name, moved.Lat, moved.Lon, moved.Capabilities, moved.Status = "Hongdae | exit 2", 37.5, 127.0, []string{}, sourcing.Closed
		mustPut(t, d, moved)
		got, err = d.Get(ctx, "HD")
		if err != nil || got.Name != "Hongdae | exit 2" || got.Lat != 37.5 || len(got.Capabilities) != 0 || got.Status != sourcing.Closed {
			t.Fatalf("HD put again: %+v %v", got, err)
		}
		near, err := d.Near(ctx, 37.5, 127.0, 0.1, 10)
		if err != nil || len(near) != 1 || near[0].ID != "HD" || near[0].DistanceKm > 0.001 {
			t.Fatalf("near HD's new place: %+v %v", near, err)
		}
	})
	t.Run("near", func(t *testing.T) {
		t.Parallel()
		d := newDir(t)
		if near, err := d.Near(ctx, CityHallLat, CityHallLon, 10, 10); err != nil || len(near) != 0 {
			t.Fatalf("an empty directory: %+v %v", near, err)
		}
		for _, s := range Seoul() {
			mustPut(t, d, s)
		}
		near, err := d.Near(ctx, CityHallLat, CityHallLon, 10, 10)
		if err != nil {
			t.Fatal(err)
		}
		// Myeongdong 0.51 km, Hongdae 4.92, Yeouido 6.82 (closed: listed), Gangnam 8.78;
		// Jamsil (12.28) is out of reach.
		want := []string{"MD", "HD", "YD", "GN"}
		if len(near) != len(want) {
			t.Fatalf("near City Hall: %+v, want %v", near, want)
		}
		for i, n := range near {
			s := byID(n.ID)
			exact := sourcing.DistanceKm(CityHallLat, CityHallLon, s.Lat, s.Lon)
			if n.ID != want[i] || math.Abs(n.DistanceKm-exact) > 0.001 || n.Status != s.Status || n.Name != s.Name {
				t.Fatalf("near[%d] = %+v, want %s at %.4f km", i, n, want[i], exact)
			}
		}
		if near, err := d.Near(ctx, CityHallLat, CityHallLon, 10, 2); err != nil || len(near) != 2 || near[1].ID != "HD" {
			t.Fatalf("limit 2: %+v %v", near, err)
		}
		if near, err := d.Near(ctx, CityHallLat, CityHallLon, 100, 10); err != nil || len(near) != 5 || near[4].ID != "JS" {
			t.Fatalf("100 km: %+v %v", near, err)
		}
	})
}

func byID(id string) sourcing.Store {
	for _, s := range Seoul() {
		if s.ID == id {
			return s
		}
	}
	return sourcing.Store{}
}

func mustPut(t *testing.T, d sourcing.Directory, s sourcing.Store) {
	t.Helper()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(context.Background(), s); err != nil {
		t.Fatalf("put %s: %v", s.ID, err)
	}
}

// Sagas runs the saga log contract on a fresh log of newSagas.
func Sagas(t *testing.T, newSagas func(t *testing.T) sourcing.Sagas) {
	ctx := context.Background()
	t.Parallel()
	s := newSagas(t)
	later := time.Now().Add(time.Hour)
	b, err := s.Begin(ctx, "web-1", later, 30)
	if err != nil || b.State != sourcing.SagaBegun || b.First != 0 || b.Token == "" {
		t.Fatalf("first begin: %+v %v", b, err)
	}
	if busy, err := s.Begin(ctx, "web-1", later, 30); err != nil || busy.State != sourcing.SagaBusy || busy.Until.UnixMilli() != later.UnixMilli() {
		t.Fatalf("begin while held by a call: %+v %v, want busy until %s", busy, err, later)
	}
	if ours, err := s.Finish(ctx, "web-1", "not-the-token", true, []byte("x")); err != nil || ours {
		t.Fatalf("finish with another token: %v %v, want refused", ours, err)
	}
	if ours, err := s.Finish(ctx, "web-1", b.Token, true, []byte(`{"plan":1}`)); err != nil || !ours {
		t.Fatalf("finish: %v %v", ours, err)
	}
	if held, err := s.Begin(ctx, "web-1", later, 30); err != nil || held.State != sourcing.SagaHeld || string(held.Plan) != `{"plan":1}` {
		t.Fatalf("begin after a held answer: %+v %v", held, err)
	}

	// Released: the next call begins, numbering after the first call's block.
	b, _ = s.Begin(ctx, "web-2", later, 30)
	if ours, err := s.Finish(ctx, "web-2", b.Token, false, nil); err != nil || !ours {
		t.Fatalf("release: %v %v", ours, err)
	}
	if again, err := s.Begin(ctx, "web-2", later, 30); err != nil || again.State != sourcing.SagaBegun || again.First != 30 {
		t.Fatalf("begin after a release: %+v %v, want begun from 30", again, err)
	}

	// A call that died: once its Until has passed, the next call takes over, and the dead
	// call's token no longer finishes anything.
	dead, _ := s.Begin(ctx, "web-3", time.Now().Add(-time.Second), 30)
	over, err := s.Begin(ctx, "web-3", later, 30)
	if err != nil || over.State != sourcing.SagaBegun || over.First != 30 {
		t.Fatalf("take over a dead call: %+v %v", over, err)
	}
	if ours, _ := s.Finish(ctx, "web-3", dead.Token, true, []byte("x")); ours {
		t.Fatal("the dead call finished a record taken over")
	}
}
