package jaego

import (
	"regexp"
	"strings"
)

var (
	storeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	skuRE   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// ValidStore reports whether id is a well-formed store identifier (design §2).
func ValidStore(id string) bool { return storeRE.MatchString(id) }

// ValidSKU reports whether id is a well-formed SKU identifier (design §2).
func ValidSKU(id string) bool { return skuRE.MatchString(id) }

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
		return Invalidf("store", "store %q must match %s", id, storeRE)
	}
	return nil
}

// CheckSKU returns an invalid-input error when id is not a well-formed SKU.
func CheckSKU(id string) error {
	if !ValidSKU(id) {
		return Invalidf("sku", "sku %q must match %s", id, skuRE)
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
