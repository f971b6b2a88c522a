package testenv

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// ConnsByPort counts process pid's established TCP connections by remote port (each Redis
// node of a test has its own port): the sockets among its file descriptors
// (/proc/<pid>/fd) found in /proc/<pid>/net/tcp and tcp6.
func ConnsByPort(pid int) (map[int]int, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	mine := map[string]bool{}
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			mine[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	// A socket is counted once by its inode: /proc/net/tcp is read in pages while the kernel
	// changes it, and a busy table lists some sockets twice in one read (seen: 12 lines for 6
	// sockets while a node hung and connections closed around them).
	out := map[int]int{}
	seen := map[string]bool{}
	for _, table := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "01" || !mine[f[9]] || seen[f[9]] { // 01: established
				continue
			}
			seen[f[9]] = true
			_, portHex, _ := strings.Cut(f[2], ":")
			port, _ := strconv.ParseInt(portHex, 16, 32)
			out[int(port)]++
		}
	}
	return out, nil
}

// Port is the port of a host:port address (0 when it has none).
func Port(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// SampleConns samples, every 5 ms until end is called, this process's established
// connections to port; end answers the most it saw, and the lines of /proc/net/tcp and
// tcp6 to that port at that moment (what a failure should print).
func SampleConns(t testing.TB, port int) (end func() (int, string)) {
	var most atomic.Int64
	var at atomic.Pointer[string]
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			conns, err := ConnsByPort(os.Getpid())
			if err != nil {
				t.Error(err)
				return
			}
			if n := int64(conns[port]); n > most.Load() {
				most.Store(n)
				lines := tcpLines(port)
				at.Store(&lines)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() (int, string) {
		close(stop)
		<-done
		detail := ""
		if p := at.Load(); p != nil {
			detail = *p
		}
		return int(most.Load()), detail
	}
}

// tcpLines are the lines of /proc/self/net/tcp and tcp6 with port as either end.
func tcpLines(port int) string {
	var out []string
	for _, table := range []string{"tcp", "tcp6"} {
		b, _ := os.ReadFile("/proc/self/net/" + table)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, fmt.Sprintf(":%04X ", port)) {
				out = append(out, strings.TrimSpace(l))
			}
		}
	}
	return strings.Join(out, "\n")
}
