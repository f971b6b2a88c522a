// Package testenv starts private, throwaway servers for tests and benchmarks: a
// redis-server or a 3-master Redis Cluster on free loopback ports, so that no test shares
// state with the machine's own Redis on 6379. Servers die with the test (t.Cleanup) and,
// should the test binary be killed, with their parent (Pdeathsig).
package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// RedisServer is one private redis-server process.
type RedisServer struct {
	Addr  string
	cmd   *exec.Cmd
	dir   string
	extra []string
	done  chan struct{}
}

// Redis starts a private standalone redis-server for the test (extra: more redis.conf
// lines) and returns a client to it.
func Redis(t testing.TB, extra ...string) (rueidis.Client, *RedisServer) {
	t.Helper()
	srv, err := StartRedis(t.TempDir(), extra...)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(srv.Stop)
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}})
	if err != nil {
		t.Fatalf("testenv: client for %s: %v", srv.Addr, err)
	}
	t.Cleanup(c.Close)
	return c, srv
}

// RedisCluster starts a private 3-master Redis Cluster and returns a cluster client to it.
func RedisCluster(t testing.TB) (rueidis.Client, []*RedisServer) {
	t.Helper()
	return RedisClusterWithReplicas(t, 0, 5*time.Second)
}

// RedisClusterWithReplicas starts a private Redis Cluster of 3 masters with replicas
// replicas each (cluster-node-timeout nodeTimeout: how soon a dead master's replica is
// elected) and returns a cluster client to it (rueidis' retries off: a test that kills
// nodes sees each failure).
func RedisClusterWithReplicas(t testing.TB, replicas int, nodeTimeout time.Duration) (rueidis.Client, []*RedisServer) {
	t.Helper()
	nodes, err := StartRedisClusterWithReplicas(t.TempDir(), 3, replicas, nodeTimeout)
	for _, n := range nodes {
		t.Cleanup(n.Stop)
	}
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Addr
	}
	o := rueidis.ClientOption{InitAddress: addrs}
	if replicas > 0 {
		o.DisableCache, o.DisableRetry = true, true
	}
	c, err := rueidis.NewClient(o)
	if err != nil {
		t.Fatalf("testenv: cluster client: %v", err)
	}
	t.Cleanup(c.Close)
	return c, nodes
}

// RedisWithReplica starts a private master and its replica, and waits until the replica
// is in sync.
func RedisWithReplica(t testing.TB) (master, replica *RedisServer) {
	t.Helper()
	dir := t.TempDir()
	master, err := StartRedis(filepath.Join(dir, "m"))
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(master.Stop)
	host, port, _ := strings.Cut(master.Addr, ":")
	if replica, err = StartRedis(filepath.Join(dir, "r"), "replicaof "+host+" "+port); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(replica.Stop)
	Eventually(t, "the replica in sync", 30*time.Second, func() bool {
		role, err := replica.info(context.Background(), "master_link_status:up")
		return err == nil && role
	})
	return master, replica
}

// MasterOf is the node that is master of key's slot, as the first live node answers; c is
// a cluster client (its builder knows the key's slot).
func MasterOf(t testing.TB, c rueidis.Client, nodes []*RedisServer, key string) *RedisServer {
	t.Helper()
	ctx := context.Background()
	probe := c.B().Get().Key(key).Build()
	slot := int64(probe.Slot())
	for _, asked := range nodes {
		one, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{asked.Addr}, ForceSingleClient: true, DisableCache: true})
		if err != nil {
			continue // a dead node
		}
		shards, err := one.Do(ctx, one.B().ClusterSlots().Build()).ToArray()
		one.Close()
		if err != nil {
			continue
		}
		for _, sh := range shards {
			f, _ := sh.ToArray()
			lo, _ := f[0].AsInt64()
			hi, _ := f[1].AsInt64()
			if slot < lo || slot > hi {
				continue
			}
			m, _ := f[2].ToArray()
			port, _ := m[1].AsInt64()
			for _, n := range nodes {
				if strings.HasSuffix(n.Addr, ":"+strconv.FormatInt(port, 10)) {
					return n
				}
			}
		}
	}
	t.Fatalf("testenv: no node knows the master of slot %d", slot)
	return nil
}

// ReplicaOf is the node that replicates master.
func ReplicaOf(t testing.TB, nodes []*RedisServer, master *RedisServer) *RedisServer {
	t.Helper()
	_, port, _ := strings.Cut(master.Addr, ":")
	for _, n := range nodes {
		if ok, err := n.info(context.Background(), "role:slave", "master_port:"+port+"\r"); err == nil && ok {
			return n
		}
	}
	t.Fatalf("testenv: no replica of %s", master.Addr)
	return nil
}

// Synced reports whether the node is a replica whose link to its master is up (its first
// sync done): one a Cluster can elect when its master dies.
func (s *RedisServer) Synced(ctx context.Context) bool {
	ok, err := s.info(ctx, "role:slave", "master_link_status:up")
	return err == nil && ok
}

// info reports whether the node's INFO replication holds every one of lines.
func (s *RedisServer) info(ctx context.Context, lines ...string) (bool, error) {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		return false, err
	}
	defer c.Close()
	repl, err := c.Do(ctx, c.B().Info().Section("replication").Build()).ToString()
	if err != nil {
		return false, err
	}
	for _, l := range lines {
		if !strings.Contains(repl, l) {
			return false, nil
		}
	}
	return true, nil
}

// RedisServerBinary finds redis-server, with a message that says how to install it.
func RedisServerBinary() (string, error) {
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", errors.New("redis-server not found: run scripts/test.sh (it installs it) or apt-get install -y redis-server")
	}
	return p, nil
}

// StartRedis starts a standalone redis-server with its files under dir and waits until it
// accepts connections. Extra config lines (e.g. "cluster-enabled yes") may be given.
func StartRedis(dir string, extra ...string) (*RedisServer, error) {
	bin, err := RedisServerBinary()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		srv, err := startRedisOn(bin, dir, port, extra)
		if err == nil {
			return srv, nil
		}
		lastErr = err // most likely the port was taken between probing and binding: try another
	}
	return nil, lastErr
}

func startRedisOn(bin, dir string, port int, extra []string) (*RedisServer, error) {
	nodeDir := filepath.Join(dir, "redis-"+strconv.Itoa(port))
	if err := os.MkdirAll(nodeDir, 0o755); err != nil {
		return nil, err
	}
	conf := []string{
		"port " + strconv.Itoa(port),
		"bind 127.0.0.1",
		"save \"\"",
		"appendonly no",
		"dir " + nodeDir,
		"logfile \"\"",
		"daemonize no",
		"protected-mode no",
	}
	conf = append(conf, extra...)
	confPath := filepath.Join(nodeDir, "redis.conf")
	if err := os.WriteFile(confPath, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, confPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	srv := &RedisServer{Addr: "127.0.0.1:" + strconv.Itoa(port), cmd: cmd, dir: nodeDir, extra: extra, done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		// The server says when it is ready; we read its log instead of guessing a delay.
		sc := bufio.NewScanner(out)
		var tail []string
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			if !signalled {
				tail = append(tail, line)
				if strings.Contains(line, "Ready to accept connections") {
					ready <- nil
					signalled = true
				}
			}
		}
		_, _ = io.Copy(io.Discard, out)
		if !signalled {
			ready <- fmt.Errorf("redis-server on port %d exited before it was ready:\n%s", port, strings.Join(tail, "\n"))
		}
		_ = cmd.Wait()
		close(srv.done)
	}()
	select {
	case err := <-ready:
		if err != nil {
			return nil, err
		}
		return srv, nil
	case <-time.After(20 * time.Second):
		srv.Stop()
		return nil, fmt.Errorf("redis-server on port %d not ready after 20s", port)
	}
}

// Stop kills the server and waits for it to exit.
func (s *RedisServer) Stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
	}
	<-s.done
}

// Restart kills the server and starts it again on the same port, empty (nothing is
// persisted): a Redis that came back after a crash without its data.
func (s *RedisServer) Restart() error {
	s.Stop()
	bin, err := RedisServerBinary()
	if err != nil {
		return err
	}
	_, portText, _ := strings.Cut(s.Addr, ":")
	port, _ := strconv.Atoi(portText)
	n, err := startRedisOn(bin, filepath.Dir(s.dir), port, s.extra)
	if err != nil {
		return err
	}
	s.cmd, s.done = n.cmd, n.done
	return nil
}

// Pause stops the server process (SIGSTOP) so that calls to it time out, as a hung Redis
// would. It returns once the server's main thread is stopped: a SIGSTOP is sent at once but
// taken by the process's threads as they run, and a command sent right after the signal
// was once answered (a flaky breaker test in the suite).
func (s *RedisServer) Pause() error {
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	return s.await(true)
}

// Resume continues a paused server, and returns once its main thread is no longer stopped.
func (s *RedisServer) Resume() error {
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		return err
	}
	return s.await(false)
}

// await waits (up to 10 s) until the server's main thread is stopped, or is not.
func (s *RedisServer) await(stopped bool) error {
	stat := fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid)
	for deadline := time.Now().Add(10 * time.Second); ; {
		b, err := os.ReadFile(stat)
		if err != nil {
			return fmt.Errorf("testenv: redis-server %s: %w", s.Addr, err)
		}
		// "pid (comm) state …": the state is the field after the last ')'.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && (b[i+2] == 'T') == stopped {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testenv: redis-server %s: still %s after 10 s", s.Addr, map[bool]string{true: "running", false: "stopped"}[stopped])
		}
		time.Sleep(time.Millisecond) // a poll of the process's state, not a guess at a delay
	}
}

// StartRedisCluster starts n masters (n ≥ 3), assigns the slots with redis-cli --cluster
// create and waits until every node reports cluster_state:ok.
func StartRedisCluster(dir string, n int) ([]*RedisServer, error) {
	return StartRedisClusterWithReplicas(dir, n, 0, 5*time.Second)
}

// StartRedisClusterWithReplicas starts masters (≥ 3) with replicas replicas each (the
// nodes after the masters), cluster-node-timeout nodeTimeout (how soon a dead master's
// replica is elected), and waits until every node reports cluster_state:ok and every
// replica's link to its master is up.
func StartRedisClusterWithReplicas(dir string, masters, replicas int, nodeTimeout time.Duration) ([]*RedisServer, error) {
	var nodes []*RedisServer
	for i := 0; i < masters*(1+replicas); i++ {
		// The cluster bus listens on port+10000, which freePort checks too.
		srv, err := StartRedis(dir, "cluster-enabled yes", "cluster-config-file nodes.conf",
			"cluster-node-timeout "+strconv.FormatInt(nodeTimeout.Milliseconds(), 10))
		if err != nil {
			return nodes, err
		}
		nodes = append(nodes, srv)
	}
	args := []string{"--cluster", "create"}
	for _, s := range nodes {
		args = append(args, s.Addr)
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		return nodes, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, s := range nodes {
		if err := waitNode(ctx, s.Addr, func(c rueidis.Client) bool {
			info, err := c.Do(ctx, c.B().ClusterInfo().Build()).ToString()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
			repl, err := c.Do(ctx, c.B().Info().Section("replication").Build()).ToString()
			return err == nil && (strings.Contains(repl, "role:master") || strings.Contains(repl, "master_link_status:up"))
		}); err != nil {
			return nodes, err
		}
	}
	return nodes, nil
}

// Role returns the node's replication role: "master" or "slave".
func (s *RedisServer) Role(ctx context.Context) (string, error) {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{s.Addr}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		return "", err
	}
	defer c.Close()
	repl, err := c.Do(ctx, c.B().Info().Section("replication").Build()).ToString()
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(repl, "\n") {
		if role, ok := strings.CutPrefix(strings.TrimSpace(line), "role:"); ok {
			return role, nil
		}
	}
	return "", fmt.Errorf("%s: no role in INFO replication", s.Addr)
}

// waitNode polls the node until ok says yes. Gossip and replication have no event to wait
// on, so this is a bounded poll of a condition, not a guessed delay.
func waitNode(ctx context.Context, addr string, ok func(rueidis.Client) bool) error {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		return err
	}
	defer c.Close()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !ok(c) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster node %s not ready: %w", addr, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

var portMu sync.Mutex

// freePort asks the kernel for a free loopback port whose +10000 neighbour (a cluster bus
// port) is free too.
func freePort() (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if port+10000 > 65535 {
			l.Close()
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		l.Close()
		if err != nil {
			continue
		}
		bus.Close()
		return port, nil
	}
	return 0, errors.New("no free port pair found")
}
