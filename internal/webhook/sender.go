package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Sender makes one attempt of a message: design §14's rules of the request (no redirect
// followed, a 10 s timeout, at most 64 KiB of the answer's headers and of its body read) on a client whose dialer
// refuses addresses the Targets do not allow.
type Sender struct {
	client  *http.Client
	timeout time.Duration
	agent   string
}

// MaxAnswer is how much of an answer is read (and then dropped).
const MaxAnswer = 64 << 10

// NewSender returns a Sender to targets, with timeout per attempt (default 10 s) and the
// User-Agent agent.
func NewSender(targets Targets, timeout time.Duration, agent string) *Sender {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	dialer := &net.Dialer{Timeout: timeout, Control: targets.Control}
	tr := &http.Transport{
		Proxy:               nil, // a proxy would dial for us, past the address check
		DialContext:         dialer.DialContext,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: timeout,
		// A receiver's headers are read up to this much (net/http's default is 10 MiB): an
		// answer is a status and a little text.
		MaxResponseHeaderBytes: MaxAnswer,
		ForceAttemptHTTP2:      true,
		// A message's head and body go out in one write (a batch-100 body is ~20 KiB): with
		// the default 4 KiB the receiver woke for the head and again for the rest, 8% more
		// CPU and time a request on loopback (docs/benchmarks.md, "Webhooks").
		WriteBufferSize: 32 << 10,
	}
	return &Sender{timeout: timeout, agent: agent, client: &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Send posts body to url with headers and says what came back: the status (0 when no
// answer came) and, unless it is a 2xx, why it failed.
func (s *Sender) Send(ctx context.Context, url string, headers map[string]string, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.agent)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && errors.Is(err, context.DeadlineExceeded) {
			return 0, fmt.Errorf("no answer within %s", s.timeout)
		}
		return 0, errors.New(strings.TrimPrefix(err.Error(), "Post \""+url+"\": "))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxAnswer))
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return resp.StatusCode, nil
	}
	if resp.StatusCode/100 == 3 {
		return resp.StatusCode, fmt.Errorf("answered %d (redirects are not followed)", resp.StatusCode)
	}
	return resp.StatusCode, fmt.Errorf("answered %d", resp.StatusCode)
}

// Close drops idle connections.
func (s *Sender) Close() { s.client.CloseIdleConnections() }
