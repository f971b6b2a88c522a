package testenv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Receiver is a webhook receiver nobody here wrote the checking part of: a Node program
// (testdata/webhook-receiver) that verifies every request with the Standard Webhooks
// reference library for TypeScript, deduplicates by webhook-id, and misbehaves on request.
type Receiver struct {
	URL string // where webhooks go: http://127.0.0.1:<port>/hook
	t   testing.TB
}

// ReceivedMessage is one message the receiver accepted, the first time its id came.
type ReceivedMessage struct {
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	Data        json.RawMessage `json:"data"`
	Traceparent string          `json:"traceparent"`
}

// ReceiverState is what the receiver has seen.
type ReceiverState struct {
	Messages      []ReceivedMessage `json:"messages"`
	Received      int               `json:"received"`
	BadSignatures int               `json:"bad_signatures"`
	LastBad       string            `json:"last_bad"`
	Failed        int               `json:"failed"`
	Dropped       int               `json:"dropped"`
}

var npmOnce sync.Once
var npmErr error

// receiverDir is testdata/webhook-receiver, with its node_modules installed (npm ci, once
// per test binary, when scripts/test.sh has not done it).
func receiverDir() (string, error) {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "webhook-receiver")
	npmOnce.Do(func() {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks")); err == nil {
			return
		}
		out, err := exec.Command("npm", "--prefix", dir, "ci", "--no-audit", "--no-fund", "--silent").CombinedOutput()
		if err != nil {
			npmErr = fmt.Errorf("testenv: npm ci in %s (install nodejs and npm): %v\n%s", dir, err, out)
		}
	})
	return dir, npmErr
}

// StartReceiver starts a receiver on a free loopback port; the test's cleanup stops it.
func StartReceiver(t testing.TB) *Receiver {
	t.Helper()
	dir, err := receiverDir()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", filepath.Join(dir, "receiver.js"))
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &syncWriter{w: &stderr}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start the webhook receiver (node): %v", err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "listening ") {
				line <- strings.TrimPrefix(sc.Text(), "listening ")
			}
		}
	}()
	select {
	case port := <-line:
		return &Receiver{URL: "http://127.0.0.1:" + port + "/hook", t: t}
	case <-time.After(30 * time.Second):
		t.Fatalf("testenv: the webhook receiver did not start in 30s:\n%s", stderr.String())
		return nil
	}
}

func (r *Receiver) base() string { return strings.TrimSuffix(r.URL, "/hook") }

// Control changes how the receiver behaves: "secrets" ([]string), "fail_rate" (0..1),
// "slow_ms" (answers wait up to that long), "down_ms" (no answer at all for that long).
func (r *Receiver) Control(c map[string]any) {
	r.t.Helper()
	b, _ := json.Marshal(c)
	res, err := http.Post(r.base()+"/control", "application/json", bytes.NewReader(b))
	if err != nil {
		r.t.Fatalf("webhook receiver control: %v", err)
	}
	res.Body.Close()
}

// State is what the receiver has seen so far.
func (r *Receiver) State() ReceiverState {
	r.t.Helper()
	res, err := http.Get(r.base() + "/state")
	if err != nil {
		r.t.Fatalf("webhook receiver state: %v", err)
	}
	defer res.Body.Close()
	var s ReceiverState
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		r.t.Fatalf("webhook receiver state: %v", err)
	}
	return s
}
