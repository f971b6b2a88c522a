package testenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

//go:embed jaeger.yaml
var jaegerConfig []byte

// JaegerVersion is the Jaeger all-in-one that tools/jaeger builds.
const JaegerVersion = "v1.75.0"

// Jaeger is a private Jaeger all-in-one (a trace backend nobody here wrote) with in-memory
// storage: spans go in over OTLP, and come back out through its query API.
type Jaeger struct {
	OTLPHTTP string // http://host:port, the OTEL_EXPORTER_OTLP_ENDPOINT for http/protobuf
	OTLPGRPC string // http://host:port, the endpoint for OTEL_EXPORTER_OTLP_PROTOCOL=grpc
	Query    string // http://host:port of the query API (/api/traces)
}

var jaegerBuild struct {
	once sync.Once
	bin  string
	err  error
}

// JaegerBinary builds tools/jaeger once per machine into the user cache directory (a few
// minutes on a fresh machine, seconds with a warm Go build cache) and returns its path.
func JaegerBinary() (string, error) {
	jaegerBuild.once.Do(func() { jaegerBuild.bin, jaegerBuild.err = buildJaeger() })
	return jaegerBuild.bin, jaegerBuild.err
}

func buildJaeger() (string, error) {
	_, here, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("testenv: cannot find the source of testenv")
	}
	module := filepath.Join(filepath.Dir(here), "..", "..", "tools", "jaeger")
	sum, err := os.ReadFile(filepath.Join(module, "go.sum"))
	if err != nil {
		return "", fmt.Errorf("testenv: tools/jaeger: %w", err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	h := sha256.Sum256(sum)
	bin := filepath.Join(cache, "jaego", "jaeger-"+JaegerVersion+"-"+hex.EncodeToString(h[:4]))
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	tmp := bin + ".tmp" + strconv.Itoa(os.Getpid())
	cmd := exec.Command("go", "build", "-o", tmp, "github.com/jaegertracing/jaeger/cmd/jaeger")
	cmd.Dir = module
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testenv: build jaeger (tools/jaeger): %v\n%s", err, out)
	}
	return bin, os.Rename(tmp, bin)
}

// StartJaeger starts a private Jaeger on free loopback ports and waits until its query API
// answers; the test's cleanup stops it.
func StartJaeger(t testing.TB) *Jaeger {
	t.Helper()
	bin, err := JaegerBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(conf, jaegerConfig, 0o644); err != nil {
		t.Fatal(err)
	}
	var ports [4]int
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			t.Fatal(err)
		}
	}
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	j := &Jaeger{OTLPGRPC: "http://" + addr(ports[0]), OTLPHTTP: "http://" + addr(ports[1]), Query: "http://" + addr(ports[2])}
	var out bytes.Buffer
	cmd := exec.Command(bin, "--config", conf)
	cmd.Env = append(os.Environ(), "JAEGER_OTLP_GRPC="+addr(ports[0]), "JAEGER_OTLP_HTTP="+addr(ports[1]),
		"JAEGER_QUERY_HTTP="+addr(ports[2]), "JAEGER_QUERY_GRPC="+addr(ports[3]))
	cmd.Stdout, cmd.Stderr = &syncWriter{w: &out}, &syncWriter{w: &out}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start jaeger: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("testenv: jaeger exited before it was ready:\n%s", out.String())
		default:
		}
		if res, err := http.Get(j.Query + "/api/services"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return j
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: jaeger not ready after 60s:\n%s", out.String())
		}
		time.Sleep(pollEvery)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// Span is one span as Jaeger's query API answers it.
type Span struct {
	TraceID   string
	SpanID    string
	Name      string
	Service   string
	Parent    string            // the span's parent in its trace ("" for a root)
	Links     []string          // trace ids of the spans it links to (FOLLOWS_FROM)
	Tags      map[string]string // attributes, values as text
	StartedAt time.Time
}

// Traces answers the traces Jaeger holds for service, by trace id.
func (j *Jaeger) Traces(ctx context.Context, service string) (map[string][]Span, error) {
	return j.query(ctx, "/api/traces?limit=1000&lookback=1h&service="+url.QueryEscape(service))
}

// Trace answers the spans of one trace (none when Jaeger has not got it, yet).
func (j *Jaeger) Trace(ctx context.Context, traceID string) ([]Span, error) {
	traces, err := j.query(ctx, "/api/traces/"+url.PathEscape(traceID))
	if err != nil {
		return nil, err
	}
	return traces[traceID], nil
}

func (j *Jaeger) query(ctx context.Context, path string) (map[string][]Span, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.Query+path, nil)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusNotFound {
		return map[string][]Span{}, nil
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jaeger %s: %s", path, res.Status)
	}
	var body struct {
		Data []struct {
			TraceID   string
			Processes map[string]struct{ ServiceName string }
			Spans     []struct {
				TraceID, SpanID, OperationName, ProcessID string
				StartTime                                 int64
				References                                []struct{ RefType, TraceID, SpanID string }
				Tags                                      []struct {
					Key   string
					Value any
				}
			}
		}
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("jaeger %s: %w", path, err)
	}
	out := map[string][]Span{}
	for _, tr := range body.Data {
		for _, s := range tr.Spans {
			sp := Span{TraceID: s.TraceID, SpanID: s.SpanID, Name: s.OperationName, Service: tr.Processes[s.ProcessID].ServiceName,
				Tags: map[string]string{}, StartedAt: time.UnixMicro(s.StartTime)}
			for _, r := range s.References {
				switch {
				case r.RefType == "CHILD_OF" && r.TraceID == s.TraceID && sp.Parent == "":
					sp.Parent = r.SpanID
				default:
					sp.Links = append(sp.Links, r.TraceID)
				}
			}
			for _, tag := range s.Tags {
				sp.Tags[tag.Key] = fmt.Sprint(tag.Value)
			}
			out[tr.TraceID] = append(out[tr.TraceID], sp)
		}
	}
	return out, nil
}
