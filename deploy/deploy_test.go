// Package deploy holds what runs beside jaego in production: the Prometheus alert rules and
// their unit tests, a Prometheus and an Alertmanager configuration, and the Grafana
// dashboard. The tests here check them with the tools that will load them (promtool,
// amtool) and check every metric they name against the metrics the code defines and
// docs/operations.md documents.
package deploy

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pb33f/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// tool is the path of a command the tests need; scripts/test.sh installs both.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed to check deploy/: apt-get install -y %s (./scripts/test.sh installs it)", name, pkg)
	}
	return p
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestAlertRules: the rules load, their unit tests pass, the Prometheus configuration that
// loads them is valid.
func TestAlertRules(t *testing.T) {
	promtool := tool(t, "promtool", "prometheus")
	run(t, "prometheus", promtool, "check", "rules", "alerts.yml")
	run(t, "prometheus", promtool, "test", "rules", "alerts_test.yml")
	run(t, "prometheus", promtool, "check", "config", "prometheus.yml")
}

// TestAlertRulesAreAllTested: every alert of alerts.yml is expected to fire somewhere in
// alerts_test.yml.
func TestAlertRulesAreAllTested(t *testing.T) {
	rules := names(t, "prometheus/alerts.yml", `(?m)^\s*- alert: (\w+)`)
	tested := names(t, "prometheus/alerts_test.yml", `(?m)^\s*alertname: (\w+)\n\s*exp_alerts:\n\s*- exp_labels`)
	for _, r := range rules {
		if !slices.Contains(tested, r) {
			t.Errorf("alert %s is never expected to fire in alerts_test.yml", r)
		}
	}
	if len(rules) == 0 {
		t.Fatal("no alert in alerts.yml")
	}
}

// TestAlertmanagerRoutes: the configuration is valid; critical alerts reach the on-call
// channel and the stock channel, warnings the stock channel only.
func TestAlertmanagerRoutes(t *testing.T) {
	amtool := tool(t, "amtool", "prometheus-alertmanager")
	run(t, "alertmanager", amtool, "check-config", "alertmanager.yml")
	for labels, want := range map[string]string{
		"severity=critical alertname=JaegoDown":                  "slack-oncall,slack-stock",
		"severity=warning alertname=JaegoConsumerLag":            "slack-stock",
		"severity=critical alertname=JaegoConsumerPausedOnRedis": "slack-oncall,slack-stock",
	} {
		args := append([]string{"config", "routes", "test", "--config.file=alertmanager.yml"}, strings.Fields(labels)...)
		// The receivers are the last line (Debian's amtool may warn about its own config first).
		out := strings.Split(strings.TrimSpace(run(t, "alertmanager", amtool, args...)), "\n")
		if got := out[len(out)-1]; got != want {
			t.Errorf("%s goes to %q, want %q", labels, got, want)
		}
	}
}

type dashboard struct {
	Title  string  `json:"title"`
	UID    string  `json:"uid"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		Expr       string `json:"expr"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("grafana/jaego.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("grafana/jaego.json: %v", err)
	}
	return d
}

// TestDashboard: panels have unique ids and queries on the dashboard's data source, and
// every query is valid PromQL (promtool checks them as recording rules, with Grafana's
// variables given values).
func TestDashboard(t *testing.T) {
	promtool := tool(t, "promtool", "prometheus")
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Fatal("the dashboard needs a uid and a title")
	}
	seen := map[int]bool{}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	queries := 0
	for _, p := range d.Panels {
		if seen[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		seen[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if q.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q queries data source %q, not the dashboard's ${datasource}", p.Title, q.Datasource.UID)
			}
			expr := strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*").Replace(q.Expr)
			b, _ := json.Marshal(expr) // a JSON string is a YAML string
			fmt.Fprintf(&rules, "      - record: dashboard:query_%d\n        expr: %s\n", queries, b)
			queries++
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "queries.yml"), []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := run(t, dir, promtool, "check", "rules", "queries.yml")
	if want := fmt.Sprintf("%d rules found", queries); !strings.Contains(out, want) {
		t.Errorf("promtool: %s (want %s)", out, want)
	}
}

var metricName = regexp.MustCompile(`\bjaego_[a-z0-9_]+`)

// TestMetricNames: every metric the rules and the dashboard query is one the code defines,
// and docs/operations.md documents exactly the metrics the code defines.
func TestMetricNames(t *testing.T) {
	defined := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "deploy") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range regexp.MustCompile(`(?:Name:\s*|NewDesc\()"(jaego_[a-z0-9_]+)"`).FindAllStringSubmatch(string(b), -1) {
			defined[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(defined) < 10 {
		t.Fatalf("found only %d metric definitions in the code: %v", len(defined), defined)
	}
	known := func(name string) bool {
		if defined[name] {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} { // a histogram's series
			if base, ok := strings.CutSuffix(name, suffix); ok && defined[base] {
				return true
			}
		}
		return false
	}
	for _, file := range []string{"prometheus/alerts.yml", "prometheus/alerts_test.yml", "grafana/jaego.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range metricName.FindAllString(string(b), -1) {
			if !known(name) {
				t.Errorf("%s names %s, which no code defines", file, name)
			}
		}
	}

	ops, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(ops), "\n## Metrics\n")
	if start < 0 {
		t.Fatal("docs/operations.md has no Metrics section")
	}
	section, _, _ := strings.Cut(string(ops)[start+1:], "\n## ")
	documented := map[string]bool{}
	for _, name := range metricName.FindAllString(section, -1) {
		documented[name] = true
		if !defined[name] {
			t.Errorf("docs/operations.md documents %s, which no code defines", name)
		}
	}
	for name := range defined {
		if !documented[name] {
			t.Errorf("%s is defined but not in docs/operations.md, Metrics", name)
		}
	}
}

func names(t *testing.T, file, pattern string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(pattern).FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	return out
}

// TestCompose checks deploy/compose.yaml as far as this machine can without a container
// engine: every service has a pinned image, every file it mounts exists, every dependency
// is a service, the jaego services set only documented JAEGO_* settings, and Prometheus
// scrapes and alerts exactly the services the file runs.
func TestCompose(t *testing.T) {
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			DependsOn   map[string]any    `yaml:"depends_on"`
			Command     any               `yaml:"command"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	// The Compose Specification's own JSON schema (testdata/compose-spec.json, from the
	// compose-spec project, Apache-2.0): keys, types and enums of every service.
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	schemaFile, err := os.Open("testdata/compose-spec.json")
	if err != nil {
		t.Fatal(err)
	}
	defer schemaFile.Close()
	schemaDoc, err := jsonschema.UnmarshalJSON(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	compiler := jsonschema.NewCompiler()
	if err := compiler.AddResource("compose-spec.json", schemaDoc); err != nil {
		t.Fatal(err)
	}
	schema, err := compiler.Compile("compose-spec.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(jsonValue(doc)); err != nil {
		t.Errorf("compose.yaml against the Compose Specification schema: %v", err)
	}
	ops, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range c.Services {
		if s.Image == "" || strings.HasSuffix(s.Image, ":latest") || !strings.Contains(s.Image, ":") {
			t.Errorf("%s: image %q is not pinned to a tag", name, s.Image)
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, "./") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("%s mounts the undeclared volume %s", name, src)
			}
		}
		for dep := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("%s depends on the unknown service %s", name, dep)
			}
		}
		if strings.Contains(s.Image, "jaego") {
			for k := range s.Environment {
				if !strings.Contains(string(ops), "`"+k+"`") {
					t.Errorf("%s sets %s, which docs/operations.md does not list", name, k)
				}
			}
		}
	}
	prom, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`"([a-z0-9-]+):\d+"`).FindAllStringSubmatch(string(prom), -1) {
		if _, ok := c.Services[m[1]]; !ok {
			t.Errorf("prometheus.yml targets %s, which compose.yaml does not run", m[1])
		}
	}
	for _, name := range []string{"jaego-1", "jaego-2", "migrate"} {
		if c.Services[name].Environment["JAEGO_POSTGRES_URL"] == "" {
			t.Errorf("%s has no JAEGO_POSTGRES_URL (the x-jaego anchor not applied?)", name)
		}
	}
}

// jsonValue turns what YAML decoded into what a JSON decoder gives (map[string]any,
// float64 numbers), the form the schema validator takes.
func jsonValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e)
		}
		return out
	case int:
		return float64(x)
	}
	return v
}
