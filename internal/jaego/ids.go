package jaego

import (
	"strings"
)

// The identifier rules of design §2, as the patterns errors quote; ValidStore and ValidSKU
// check them with a loop over the bytes (a 1,000-SKU lookup spent 16% of its CPU in the
// regexp; ids_test.go holds the loop to the pattern).
const (
	storePattern = `^[A-Za-z0-9_-]{1,32}$`
	skuPattern   = `^[A-Za-z0-9_.-]{1,64}$`
)

// ValidStore reports whether id is a well-formed store identifier (design §2).
func ValidStore(id string) bool { return validID(id, 32, false) }

// ValidSKU reports whether id is a well-formed SKU identifier (design §2).
func ValidSKU(id string) bool { return validID(id, 64, true) }

// validID: 1..most bytes of letters, digits, '_' and '-', and '.' where dot says so.
func validID(id string, most int, dot bool) bool {
	if len(id) < 1 || len(id) > most {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		case c == '.' && dot:
		default:
			return false
		}
	}
	return true
}

// ValidEventID reports whether id is 1–128 printable ASCII characters (design §2).
func ValidEventID(id string) bool {
	if len(id) < 1 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// CheckStore returns an invalid-input error when id is not a well-formed store identifier.
func CheckStore(id string) error {
	if !ValidStore(id) {
		return Invalidf("store", "store %q must match %s", id, storePattern)
	}
	return nil
}

// CheckSKU returns an invalid-input error when id is not a well-formed SKU.
func CheckSKU(id string) error {
	if !ValidSKU(id) {
		return Invalidf("sku", "sku %q must match %s", id, skuPattern)
	}
	return nil
}

// RedactURL hides the password of a URL (scheme://user:password@host…), for banners, logs
// and errors: credentials never leave the process in clear.
func RedactURL(url string) string {
	at := strings.LastIndex(url, "@")
	scheme := strings.Index(url, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return url
	}
	userinfo := url[scheme+3 : at]
	if user, _, ok := strings.Cut(userinfo, ":"); ok {
		return url[:scheme+3] + user + ":***" + url[at:]
	}
	return url
}
