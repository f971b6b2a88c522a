package webhook

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Signing follows the Standard Webhooks specification (standardwebhooks.com): a secret is
// "whsec_" and the base64 of its key; a message is signed as
// base64(HMAC-SHA256(key, id + "." + unix seconds + "." + body)), sent as "v1,<signature>",
// one per valid secret, separated by spaces (the receiver accepts any).

// NewSecret is a fresh signing secret: 32 random bytes.
func NewSecret() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24)
	return "whsec_" + base64.StdEncoding.EncodeToString(key)
}

// secretKey is the HMAC key of a secret.
func secretKey(secret string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(k) < 24 {
		return nil, errors.New("webhook: malformed signing secret")
	}
	return k, nil
}

// Headers are the Standard Webhooks headers of one attempt of a message.
func Headers(secrets []string, id string, at time.Time, body []byte) (map[string]string, error) {
	ts := strconv.FormatInt(at.Unix(), 10)
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		key, err := secretKey(s)
		if err != nil {
			return nil, err
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write([]byte(ts))
		mac.Write([]byte{'.'})
		mac.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return map[string]string{"webhook-id": id, "webhook-timestamp": ts, "webhook-signature": strings.Join(sigs, " ")}, nil
}

// Sealed is a signing secret as the database keeps it: encrypted (AES-256-GCM) with a key
// that is not in the database, bound to its subscription, so that a dump of the database
// alone can neither sign a message nor move a secret to another subscription.
type Sealed string

// Sealer seals and opens signing secrets with the webhook key (--webhook-key-file).
type Sealer struct{ aead cipher.AEAD }

// NewSealer derives the sealing key from the key file's contents (at least 32 bytes of
// randomness, e.g. `openssl rand -base64 32`).
func NewSealer(keyMaterial []byte) (*Sealer, error) {
	if len(strings.TrimSpace(string(keyMaterial))) < 32 {
		return nil, errors.New("the webhook key must hold at least 32 characters (e.g. `openssl rand -base64 32`)")
	}
	sum := sha256.Sum256(append([]byte("jaego webhook secrets v1\x00"), []byte(strings.TrimSpace(string(keyMaterial)))...))
	block, err := aes.NewCipher(sum[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts secret for subscription id.
func (s *Sealer) Seal(id, secret string) Sealed {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return Sealed("v1:" + base64.RawStdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(secret), []byte(id))))
}

// Open decrypts a sealed secret of subscription id.
func (s *Sealer) Open(id string, sealed Sealed) (string, error) {
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(string(sealed), "v1:"))
	if err != nil || !strings.HasPrefix(string(sealed), "v1:") || len(b) < s.aead.NonceSize() {
		return "", errors.New("webhook: malformed sealed secret")
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, b[:n], b[n:], []byte(id))
	if err != nil {
		return "", fmt.Errorf("webhook: the secret of %s does not open with this webhook key (another --webhook-key-file?)", id)
	}
	return string(plain), nil
}
