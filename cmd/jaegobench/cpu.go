package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/rueidis"
)

// cpuTimes are CPU seconds used so far: by Redis (INFO cpu), by this process (rusage), by
// the whole machine (/proc/stat, every process and the kernel), and stolen from this virtual
// machine by its hypervisor for other guests (/proc/stat's steal: the noise of a shared
// host, which no process here can see). Two readings apart, divided by the wall time between
// them, say how many cores each kept busy.
// scripts is the time Redis spent inside EVALSHA (INFO commandstats), the rest of its CPU
// being the reading, parsing and answering around commands.
type cpuTimes struct{ redis, scripts, process, machine, stolen float64 }

func (a cpuTimes) minus(b cpuTimes) cpuTimes {
	return cpuTimes{a.redis - b.redis, a.scripts - b.scripts, a.process - b.process, a.machine - b.machine, a.stolen - b.stolen}
}

func (a cpuTimes) plus(b cpuTimes) cpuTimes {
	return cpuTimes{a.redis + b.redis, a.scripts + b.scripts, a.process + b.process, a.machine + b.machine, a.stolen + b.stolen}
}

// per is t divided by wall seconds: cores busy.
func (a cpuTimes) per(wall float64) cpuTimes {
	return cpuTimes{a.redis / wall, a.scripts / wall, a.process / wall, a.machine / wall, a.stolen / wall}
}

// others is the machine's CPU that was neither Redis's nor this process's (PostgreSQL, a
// redis-benchmark, the kernel).
func (a cpuTimes) others() float64 { return a.machine - a.redis - a.process }

// each is t per one of n units of work, in µs.
func (a cpuTimes) each(n int) cpuTimes { return a.per(float64(n) / 1e6) }

// writeScriptCost writes a row of a "CPU an event" table: µs of Redis, of it in EVALSHA,
// of this process, of the rest of the machine, stolen.
func writeScriptCost(out io.Writer, name string, c cpuTimes) {
	fmt.Fprintf(out, "| %s | %.1f | %.1f | %.1f | %.1f | %.1f |\n", name, c.redis, c.scripts, c.process, c.others(), c.stolen)
}

// cpuNow reads the clocks (Redis's only with a client).
func cpuNow(client rueidis.Client) cpuTimes {
	var t cpuTimes
	if client != nil {
		if info, err := client.Do(context.Background(), client.B().Info().Section("cpu").Section("commandstats").Build()).ToString(); err == nil {
			for _, line := range strings.Split(info, "\r\n") {
				k, v, _ := strings.Cut(line, ":")
				switch k {
				case "used_cpu_user", "used_cpu_sys":
					x, _ := strconv.ParseFloat(v, 64)
					t.redis += x
				case "cmdstat_evalsha": // calls=…,usec=…,…
					for _, f := range strings.Split(v, ",") {
						if us, ok := strings.CutPrefix(f, "usec="); ok {
							x, _ := strconv.ParseFloat(us, 64)
							t.scripts += x / 1e6
						}
					}
				}
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		t.process = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	// The first line of /proc/stat: "cpu  user nice system idle iowait irq softirq steal …"
	// in clock ticks (USER_HZ, 100 on Linux); busy is user to softirq but idle and iowait.
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		for i, f := range strings.Fields(line) {
			x, _ := strconv.ParseFloat(f, 64)
			switch {
			case i == 8:
				t.stolen = x / 100
			case i >= 1 && i <= 7 && i != 4 && i != 5:
				t.machine += x / 100
			}
		}
	}
	return t
}
