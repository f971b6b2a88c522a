// Package sourcing is the store directory and the sourcing of design §15: where every
// store is and what it can do, and which stores should fill a basket, nearest first, held
// all or nothing in one call. It imports no driver: the Redis geo index and saga log live
// in sourcing/redis, the durable directory in sourcing/db, the routes in sourcing/http.
package sourcing

import (
	"context"
	"math"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jaego/jaego/internal/jaego"
)

// Status says whether a store may be chosen at all.
type Status string

// The statuses of a store: a closed store stays in the directory (so answers can say why
// it was passed over) but is never chosen.
const (
	Open   Status = "open"
	Closed Status = "closed"
)

// The capabilities jaego's callers use; a directory may name others (CheckCapability).
const (
	SameDay = "same_day"
	Pickup  = "pickup"
)

// Limits of the directory and of one query.
const (
	MaxLat          = 85.05112878 // the geo index's bound (Web Mercator), as Redis's GEOADD
	MaxCapabilities = 16
	MaxName         = 200
	MaxRadiusKm     = 500.0
	DefaultRadiusKm = 10.0
	MaxListed       = 100 // stores of one GET /v1/stores
)

// Store is one store of the directory.
type Store struct {
	ID           string   `json:"store"`
	Name         string   `json:"name"`
	Lat          float64  `json:"lat"`
	Lon          float64  `json:"lon"`
	Capabilities []string `json:"capabilities"`
	Status       Status   `json:"status"`
}

var capabilityRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// CheckCapability checks a capability name: a lower-case word of up to 32 of a–z 0–9 _.
func CheckCapability(c string) error {
	if !capabilityRE.MatchString(c) {
		return jaego.Invalidf("capabilities", "capability %q must match %s", c, capabilityRE)
	}
	return nil
}

// CheckPoint checks a position: lat within ±MaxLat, lon within ±180.
func CheckPoint(lat, lon float64) error {
	if math.IsNaN(lat) || lat < -MaxLat || lat > MaxLat {
		return jaego.Invalidf("lat", "lat must be within ±%v, got %v", MaxLat, lat)
	}
	if math.IsNaN(lon) || lon < -180 || lon > 180 {
		return jaego.Invalidf("lon", "lon must be within ±180, got %v", lon)
	}
	return nil
}

// Validate checks a store and puts its capabilities in one order (sorted, each once is
// required: a capability given twice is a mistake worth saying).
func (s *Store) Validate() error {
	if err := jaego.CheckStore(s.ID); err != nil {
		return err
	}
	if s.Name == "" || len(s.Name) > MaxName || strings.ContainsFunc(s.Name, unicode.IsControl) || !utf8.ValidString(s.Name) {
		return jaego.Invalidf("name", "name must be 1..%d bytes of UTF-8 without control characters, got %q", MaxName, s.Name)
	}
	if err := CheckPoint(s.Lat, s.Lon); err != nil {
		return err
	}
	if len(s.Capabilities) > MaxCapabilities {
		return jaego.Invalidf("capabilities", "give at most %d capabilities, got %d", MaxCapabilities, len(s.Capabilities))
	}
	if s.Capabilities == nil {
		s.Capabilities = []string{}
	}
	slices.Sort(s.Capabilities)
	for i, c := range s.Capabilities {
		if err := CheckCapability(c); err != nil {
			return err
		}
		if i > 0 && s.Capabilities[i-1] == c {
			return jaego.Invalidf("capabilities", "capability %q is given twice", c)
		}
	}
	switch s.Status {
	case Open, Closed:
	case "":
		s.Status = Open
	default:
		return jaego.Invalidf("status", "status must be open or closed, got %q", s.Status)
	}
	return nil
}

// Can reports whether the store has capability c ("" asks for none).
func (s Store) Can(c string) bool {
	return c == "" || slices.Contains(s.Capabilities, c)
}

// Near is a store found around a point, with its distance.
type Near struct {
	Store
	DistanceKm float64 `json:"distance_km"`
}

// Directory is where the stores are (design §15).
//
// Contract: Put writes a store whole (a store put again replaces what it was); Get answers
// a not_found error for a store never put; Near answers the stores within radiusKm of the
// point, nearest first (equal distances by store id), at most limit of them, with their
// distance in km rounded to 4 decimals (what Redis's GEOSEARCH answers).
type Directory interface {
	Put(ctx context.Context, s Store) error
	Get(ctx context.Context, id string) (Store, error)
	Near(ctx context.Context, lat, lon, radiusKm float64, limit int) ([]Near, error)
}

// earthRadiusKm is the radius Redis's geo commands use, so that a distance computed here
// (the durable directory's, the tests') is the one Redis answers.
const earthRadiusKm = 6372.7975608

// DistanceKm is the great-circle distance between two points (haversine, as Redis's geo
// commands compute it), rounded to 4 decimals as GEOSEARCH's WITHDIST answers it.
func DistanceKm(lat1, lon1, lat2, lon2 float64) float64 {
	rad := math.Pi / 180
	u := math.Sin((lat2 - lat1) * rad / 2)
	v := math.Sin((lon2 - lon1) * rad / 2)
	a := u*u + math.Cos(lat1*rad)*math.Cos(lat2*rad)*v*v
	return RoundKm(2 * earthRadiusKm * math.Asin(math.Sqrt(a)))
}

// RoundKm rounds a distance to 4 decimals (0.1 m).
func RoundKm(d float64) float64 { return math.Round(d*1e4) / 1e4 }

// SortNear orders stores nearest first, equal distances by store id: the one order of
// Directory.Near.
func SortNear(ns []Near) {
	slices.SortFunc(ns, func(a, b Near) int {
		if a.DistanceKm != b.DistanceKm {
			if a.DistanceKm < b.DistanceKm {
				return -1
			}
			return 1
		}
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
}
