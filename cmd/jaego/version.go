package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// version, commit and date are set at build time where the build knows them
// (go build -ldflags "-X main.version=v1.2.3 -X main.commit=$(git rev-parse HEAD)
// -X main.date=…"); otherwise the module version and the VCS stamp of the build are used
// (the stamp is missing under -buildvcs=false).
var version, commit, date string

// buildInfo is what a binary knows of its build: its version, the VCS commit and its time
// (when built from a checkout), and the Go release.
type buildInfo struct {
	Version, Commit, Date, Go string
	Modified                  bool
}

func readBuildInfo() (b buildInfo) {
	b = buildInfo{Version: version, Commit: commit, Date: date, Go: runtime.Version()}
	defer func() { // named result: what is still unknown says so
		if b.Commit == "" {
			b.Commit = "unknown"
		}
		if b.Date == "" {
			b.Date = "unknown"
		}
	}()
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if b.Version == "" {
		b.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			if b.Commit == "" {
				b.Commit = s.Value
			}
		case "vcs.time":
			if b.Date == "" {
				b.Date = s.Value
			}
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	if b.Version == "" || b.Version == "(devel)" { // a build from a work tree, not a tagged module
		b.Version = "devel"
	}
	return b
}

func (b buildInfo) String() string {
	dirty := ""
	if b.Modified {
		dirty = " (modified)"
	}
	return fmt.Sprintf("jaego %s, commit %s%s, built %s, %s", b.Version, b.Commit, dirty, b.Date, b.Go)
}

// runVersion is `jaego version` (and --version): what this binary is.
func runVersion(stdout io.Writer) error {
	_, err := fmt.Fprintln(stdout, readBuildInfo())
	return err
}

// registerBuildInfo exports jaego_build_info{version,commit,go} = 1, so dashboards can tell
// which release each instance runs.
func registerBuildInfo(reg prometheus.Registerer) {
	b := readBuildInfo()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "jaego_build_info",
		Help:        "1, labelled with the version, VCS commit and Go release of the running binary.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "go": b.Go}})
	g.Set(1)
	reg.MustRegister(g)
}
