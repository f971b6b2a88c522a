package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // --promo-tz works on machines without a zoneinfo database

	"github.com/redis/rueidis"

	"github.com/jaego/jaego/internal/auth"
	"github.com/jaego/jaego/internal/httpx"
	"github.com/jaego/jaego/internal/inventory/breaker"
	"github.com/jaego/jaego/internal/jaego"
	"github.com/jaego/jaego/internal/redisconn"
	"github.com/jaego/jaego/internal/webhook"
)

// config is every setting of jaego. Flags win over JAEGO_* environment variables, which win
// over the defaults; docs/operations.md lists them all.
type config struct {
	HTTPAddr       string
	RedisURL       string
	KafkaBrokers   string
	KafkaTopic     string
	KafkaGroup     string
	KafkaSession   time.Duration
	ShardGroups    int
	MarkBuckets    int
	Retention      time.Duration
	RequestTimeout time.Duration
	AccessLog      bool
	APIKeys        string // the keys file (design §11)
	RateLimit      string // the default per-key rate limit
	MaxStreamsKey  int    // live-tail subscribers of one key at most
	MaxHolds       int    // held reservations of one store at most
	WriteAck       string // leader or replicas (design §8)
	ReplayMargin   int    // restore: records per partition replayed before the copy's last offset
	MaxStreams     int    // live-tail subscribers at most
	Auth           string // "keys" or "none"; "" = the command's default
	LogLevel       slog.Level
	LogFormat      string

	// Gift promotions.
	PostgresURL     string
	PromoTZ         string
	PromoPointerTTL time.Duration
	PromoLocalTTL   time.Duration
	PromoLocalMax   int

	// The breaker and the durable copy (design §8).
	Breaker         breaker.Options
	LedgerRetention time.Duration
	LockWatchdog    time.Duration

	// Webhooks (design §14).
	WebhookKeyFile  string
	WebhookAllowNet string
	WebhookRetryMin time.Duration
	WebhookRetryMax time.Duration
	WebhookGiveUp   time.Duration

	// jaego dev only.
	Dev         bool // webhooks may reach loopback
	RedisListen string
	KafkaListen string
	DataDir     string
}

// envFlags binds flags to a FlagSet with defaults taken from the environment, and
// remembers a malformed environment value as an error, so that it is never silently ignored.
type envFlags struct {
	fs     *flag.FlagSet
	getenv func(string) string
	errs   []error
	out    io.Writer // where -h prints the help
	args   int       // positional arguments the command takes after its flags
}

func newEnvFlags(name string, getenv func(string) string, stderr io.Writer) *envFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned (with a suggestion), help printed by Parse
	fs.Usage = func() {}
	return &envFlags{fs: fs, getenv: getenv, out: stderr}
}

func (e *envFlags) usage(env, text string) string { return fmt.Sprintf("%s (env %s)", text, env) }

func (e *envFlags) String(p *string, name, env, def, text string) {
	if v := e.getenv(env); v != "" {
		def = v
	}
	e.fs.StringVar(p, name, def, e.usage(env, text))
}

func (e *envFlags) Int(p *int, name, env string, def int, text string) {
	if v := e.getenv(env); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: not an integer", env, v))
		}
		def = n
	}
	e.fs.IntVar(p, name, def, e.usage(env, text))
}

func (e *envFlags) Duration(p *time.Duration, name, env string, def time.Duration, text string) {
	if v := e.getenv(env); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: not a duration (e.g. 48h, 500ms)", env, v))
		}
		def = d
	}
	e.fs.DurationVar(p, name, def, e.usage(env, text))
}

func (e *envFlags) Bool(p *bool, name, env string, def bool, text string) {
	if v := e.getenv(env); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: not true or false", env, v))
		}
		def = b
	}
	e.fs.BoolVar(p, name, def, e.usage(env, text))
}

func (e *envFlags) Float(p *float64, name, env string, def float64, text string) {
	if v := e.getenv(env); v != "" {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s=%q: not a number", env, v))
		}
		def = x
	}
	e.fs.Float64Var(p, name, def, e.usage(env, text))
}

func (e *envFlags) Level(p *slog.Level, name, env string, text string) {
	def := "info"
	if v := e.getenv(env); v != "" {
		def = v
	}
	if err := p.UnmarshalText([]byte(def)); err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: not a log level (debug, info, warn, error)", env, def))
	}
	e.fs.TextVar(p, name, *p, e.usage(env, text))
}

func (e *envFlags) Parse(args []string) error {
	if len(e.errs) > 0 {
		return e.errs[0]
	}
	if err := e.fs.Parse(args); err != nil {
		if isHelp(err) {
			printUsage(e.fs, e.fs.Name(), e.out)
			return err
		}
		return fmt.Errorf("%w; see jaego %s -h", suggest(e.fs, err), e.fs.Name())
	}
	if e.fs.NArg() > e.args {
		return fmt.Errorf("%s: unexpected argument %q", e.fs.Name(), e.fs.Arg(e.args))
	}
	return nil
}

// commonFlags are the settings of every server command.
func commonFlags(f *envFlags, c *config) {
	f.String(&c.HTTPAddr, "http", "JAEGO_HTTP_ADDR", "127.0.0.1:8080", "HTTP listen address")
	layoutFlags(f, c)
	f.Duration(&c.Retention, "changes-retention", "JAEGO_CHANGES_RETENTION", 48*time.Hour, "how long a day's change stream is kept")
	f.Duration(&c.RequestTimeout, "request-timeout", "JAEGO_REQUEST_TIMEOUT", 2*time.Second, "bound on the store work of one HTTP request")
	logFlags(f, c)
	f.Bool(&c.AccessLog, "access-log", "JAEGO_ACCESS_LOG", false, "log one line per HTTP request (method, path, route, status, duration, request id)")
	f.Int(&c.MaxStreams, "max-streams", "JAEGO_MAX_STREAMS", 256, "live-tail (SSE) subscribers this instance serves at most; beyond, 503 too_many_streams")
	f.Int(&c.MaxStreamsKey, "max-streams-per-key", "JAEGO_MAX_STREAMS_PER_KEY", 0, "live-tail subscribers of one API key at most (0: a quarter of --max-streams)")
	f.String(&c.WriteAck, "write-ack", "JAEGO_WRITE_ACK", "leader",
		"when a write is acknowledged: leader (the Redis master applied it) or replicas (a replica confirmed it too: WAIT 1; else 503 not_replicated)")
	f.Int(&c.MaxHolds, "max-holds-per-store", "JAEGO_MAX_HOLDS_PER_STORE", 10000, "held reservations of one store at most; beyond, 429 too_many_holds")
	authFlags(f, c)
	webhookFlags(f, c)
}

// webhookFlags are the settings of outbound events (design §14).
func webhookFlags(f *envFlags, c *config) {
	f.String(&c.WebhookKeyFile, "webhook-key-file", "JAEGO_WEBHOOK_KEY_FILE", "",
		"file of the key that seals webhook signing secrets in the database (32+ random characters, e.g. openssl rand -base64 32); serve without it has no webhooks (dev keeps one in its data directory)")
	f.String(&c.WebhookAllowNet, "webhook-allow-net", "JAEGO_WEBHOOK_ALLOW_NET", "",
		"CIDRs webhooks may reach besides public addresses (comma-separated, e.g. 10.20.0.0/16); dev allows loopback too")
	f.Duration(&c.WebhookRetryMin, "webhook-retry-min", "JAEGO_WEBHOOK_RETRY_MIN", 5*time.Second, "wait after a message's first failed attempt; it doubles per attempt, with jitter")
	f.Duration(&c.WebhookRetryMax, "webhook-retry-max", "JAEGO_WEBHOOK_RETRY_MAX", time.Hour, "longest wait between attempts of a message")
	f.Duration(&c.WebhookGiveUp, "webhook-give-up", "JAEGO_WEBHOOK_GIVE_UP", 24*time.Hour, "how long a message is retried before its subscription turns failing and waits for an operator")
}

// authFlags are the access-control settings (design §11).
func authFlags(f *envFlags, c *config) {
	f.String(&c.APIKeys, "api-keys", "JAEGO_API_KEYS_FILE", "", "keys file: one `name scopes sha256:<hex>` a line (jaego keys new makes them); reloaded on SIGHUP")
	f.String(&c.RateLimit, "rate-limit", "JAEGO_RATE_LIMIT", "none", "requests a key may make, per instance, when its keys-file line has no rate= (N/s[,burst=N] or none)")
	f.String(&c.Auth, "auth", "JAEGO_AUTH", "", "keys (every route but /healthz, /readyz, /metrics needs a key; serve's default) or none (open to anyone: dev's default)")
}

// authMode settles --auth against --api-keys, with def the command's default.
func (c *config) authMode(def string) error {
	if c.Auth == "" {
		c.Auth = def
		if c.APIKeys != "" {
			c.Auth = "keys"
		}
	}
	switch {
	case c.Auth != "keys" && c.Auth != "none":
		return fmt.Errorf("--auth must be keys or none, got %q", c.Auth)
	case c.Auth == "keys" && c.APIKeys == "":
		return fmt.Errorf("no keys file: give --api-keys FILE (make keys with jaego keys new), or --auth none to serve every route to anyone")
	case c.Auth == "none" && c.APIKeys != "":
		return fmt.Errorf("--auth none and --api-keys %s contradict each other", c.APIKeys)
	case c.Auth == "keys":
		_, err := auth.Load(c.APIKeys) // a bad file stops the start, before any connection
		return err
	}
	return nil
}

// layoutFlags are the Redis key layout's settings (design §5), fixed for a deployment.
func layoutFlags(f *envFlags, c *config) {
	f.Int(&c.ShardGroups, "groups", "JAEGO_SHARD_GROUPS", 16, "shard groups G of the Redis key layout (fixed per deployment)")
	f.Int(&c.MarkBuckets, "idempotency-buckets", "JAEGO_IDEMPOTENCY_BUCKETS", 1024,
		"hashes a shard group's idempotency marks of 3.5 days are spread over (fixed per deployment; pick events per 3.5 days ÷ (G × 100))")
}

// logFlags are the log settings every command has: every command logs the same way.
func logFlags(f *envFlags, c *config) {
	f.Level(&c.LogLevel, "log-level", "JAEGO_LOG_LEVEL", "log level: debug, info, warn, error")
	f.String(&c.LogFormat, "log-format", "JAEGO_LOG_FORMAT", "json", "log format: json or text")
}

// breakerFlags are the Redis breaker's settings (design §8; defaults: the original system's)
// and the ledger's retention.
func breakerFlags(f *envFlags, c *config, slowCall time.Duration) {
	b := &c.Breaker
	f.Float(&b.FailureRate, "breaker-failure-rate", "JAEGO_BREAKER_FAILURE_RATE", 10, "percent of failed Redis calls in the window that opens the breaker")
	f.Duration(&b.SlowCall, "breaker-slow-call", "JAEGO_BREAKER_SLOW_CALL", slowCall, "a Redis call at least this long is slow (dev: 5s, for its embedded server)")
	f.Float(&b.SlowRate, "breaker-slow-rate", "JAEGO_BREAKER_SLOW_RATE", 10, "percent of slow Redis calls in the window that opens the breaker")
	f.Int(&b.Window, "breaker-window", "JAEGO_BREAKER_WINDOW", 100, "the last calls the rates are taken over")
	f.Int(&b.MinCalls, "breaker-min-calls", "JAEGO_BREAKER_MIN_CALLS", 50, "calls the window must hold before the breaker can open")
	f.Duration(&b.OpenFor, "breaker-open-for", "JAEGO_BREAKER_OPEN_FOR", 30*time.Second, "how long the breaker stays open before trial calls")
	f.Int(&b.HalfOpenCalls, "breaker-half-open-calls", "JAEGO_BREAKER_HALF_OPEN_CALLS", 30, "trial calls while half-open")
	f.Int(&b.MaxInFlight, "breaker-max-in-flight", "JAEGO_BREAKER_MAX_IN_FLIGHT", 256,
		"calls to Redis under way at once per instance; beyond, 503 overloaded at once (a burst never opens the breaker)")
	f.Duration(&c.LockWatchdog, "lock-watchdog", "JAEGO_LOCK_WATCHDOG", 5*time.Second,
		"lease a lock holder's watchdog keeps renewing: how soon another instance takes over the work of one that died (the projector, the promotion rebuild)")
	f.Duration(&c.LedgerRetention, "ledger-retention", "JAEGO_LEDGER_RETENTION", 90*24*time.Hour, "how long the durable copy's ledger keeps changes")
}

// promoFlags are the settings of the gift-promotion cache.
func promoFlags(f *envFlags, c *config) {
	f.String(&c.PromoTZ, "promo-tz", "JAEGO_PROMO_TZ", "UTC", "time zone whose midnight starts the daily promotion rebuild (IANA name, e.g. Asia/Seoul)")
	f.Duration(&c.PromoPointerTTL, "promo-pointer-cache", "JAEGO_PROMO_POINTER_CACHE", 0,
		"keep the promotion version pointer in the RESP3 client-side cache for up to this long (0: read it every request; see docs/operations.md)")
	f.Duration(&c.PromoLocalTTL, "promo-local-ttl", "JAEGO_PROMO_LOCAL_TTL", 60*time.Second, "expire-after-write of a promotion version in the local cache")
	f.Int(&c.PromoLocalMax, "promo-local-max", "JAEGO_PROMO_LOCAL_MAX", 100, "promotion versions the local cache holds at most")
}

// kafkaFlags are the topic and group of the POS event pipeline.
func kafkaFlags(f *envFlags, c *config) {
	f.String(&c.KafkaTopic, "topic", "JAEGO_KAFKA_TOPIC", "jaego.stock-events", "topic of stock events (the DLQ is <topic>.dlq)")
	f.String(&c.KafkaGroup, "group", "JAEGO_KAFKA_GROUP", "jaego-stock", "consumer group of the stock consumer")
	f.Duration(&c.KafkaSession, "kafka-session-timeout", "JAEGO_KAFKA_SESSION_TIMEOUT", 45*time.Second, "how long the group waits for a silent consumer before reassigning its partitions")
}

// serverConfig parses the flags of a server command (dev, serve): the common ones, the
// Kafka topic and group, and the command's own.
func serverConfig(name string, args []string, getenv func(string) string, stderr io.Writer, own func(*envFlags, *config)) (config, *slog.Logger, error) {
	var cfg config
	f := newEnvFlags(name, getenv, stderr)
	commonFlags(f, &cfg)
	kafkaFlags(f, &cfg)
	promoFlags(f, &cfg)
	slowCall := 500 * time.Millisecond
	if name == "dev" {
		slowCall = breaker.DevSlowCall // the embedded server is slow under a burst, not failing
	}
	breakerFlags(f, &cfg, slowCall)
	own(f, &cfg)
	if err := f.Parse(args); err != nil {
		return cfg, nil, err
	}
	if err := cfg.check(); err != nil {
		return cfg, nil, err
	}
	return cfg, cfg.logger(stderr), nil
}

func (c *config) check() error {
	if c.ShardGroups < 1 || c.ShardGroups > 16384 {
		return fmt.Errorf("--groups must be 1..16384, got %d", c.ShardGroups)
	}
	if c.MaxStreams < 1 {
		return fmt.Errorf("--max-streams must be >= 1, got %d", c.MaxStreams)
	}
	if c.MaxStreamsKey == 0 {
		c.MaxStreamsKey = max(1, c.MaxStreams/4)
	}
	if c.MaxStreamsKey < 1 || c.MaxHolds < 1 {
		return fmt.Errorf("--max-streams-per-key and --max-holds-per-store must be >= 1")
	}
	if c.WriteAck != "leader" && c.WriteAck != "replicas" {
		return fmt.Errorf("--write-ack must be leader or replicas, got %q", c.WriteAck)
	}
	if _, err := auth.ParseLimit(c.RateLimit); err != nil {
		return fmt.Errorf("--rate-limit: %w", err)
	}
	if c.MarkBuckets < 1 || c.MarkBuckets > 1<<20 {
		return fmt.Errorf("--idempotency-buckets must be 1..1048576, got %d", c.MarkBuckets)
	}
	if c.Retention < time.Hour {
		return fmt.Errorf("--changes-retention must be at least 1h, got %s", c.Retention)
	}
	if c.RequestTimeout <= 0 {
		return fmt.Errorf("--request-timeout must be positive, got %s", c.RequestTimeout)
	}
	if _, err := c.location(); err != nil {
		return err
	}
	if c.PromoPointerTTL < 0 || c.PromoLocalTTL <= 0 || c.PromoLocalMax < 1 {
		return fmt.Errorf("--promo-pointer-cache must be >= 0, --promo-local-ttl > 0 and --promo-local-max >= 1")
	}
	b := &c.Breaker
	if b.FailureRate <= 0 || b.FailureRate > 100 || b.SlowRate <= 0 || b.SlowRate > 100 {
		return fmt.Errorf("--breaker-failure-rate and --breaker-slow-rate are percents: 0 < rate <= 100")
	}
	if b.SlowCall <= 0 || b.OpenFor <= 0 || b.Window < 1 || b.MinCalls < 1 || b.MinCalls > b.Window || b.HalfOpenCalls < 1 || b.MaxInFlight < 1 {
		return fmt.Errorf("--breaker-slow-call and --breaker-open-for must be positive, 1 <= --breaker-min-calls <= --breaker-window, --breaker-half-open-calls and --breaker-max-in-flight >= 1")
	}
	if c.LockWatchdog < time.Second {
		return fmt.Errorf("--lock-watchdog must be at least 1s, got %s", c.LockWatchdog)
	}
	if c.LedgerRetention < 24*time.Hour {
		return fmt.Errorf("--ledger-retention must be at least 24h, got %s", c.LedgerRetention)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return fmt.Errorf("--log-format must be json or text, got %q", c.LogFormat)
	}
	if _, err := webhook.ParseAllowNets(c.WebhookAllowNet); err != nil {
		return err
	}
	if c.WebhookRetryMin <= 0 || c.WebhookRetryMax < c.WebhookRetryMin || c.WebhookGiveUp < c.WebhookRetryMin {
		return fmt.Errorf("--webhook-retry-min must be positive, --webhook-retry-max and --webhook-give-up at least it")
	}
	return nil
}

// location is the time zone of the daily promotion rebuild.
func (c *config) location() (*time.Location, error) {
	loc, err := time.LoadLocation(c.PromoTZ)
	if err != nil {
		return nil, fmt.Errorf("--promo-tz %q: %w", c.PromoTZ, err)
	}
	return loc, nil
}

func (c *config) logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if c.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(httpx.ContextHandler{Handler: h}) // log lines of a request carry its id
}

// redisClient connects to --redis, within a budget of G + 16 connections to each node
// (design §8), which it answers for the metrics.
// Server-assisted client-side caching (RESP3 CLIENT TRACKING) is asked for only when
// tracking is true (--promo-pointer-cache), so any Redis 6.2+, Valkey or a server without
// tracking serves jaego otherwise.
func redisClient(url string, tracking bool, groups int) (rueidis.Client, *redisconn.Budget, error) {
	opt, err := redisOption(url)
	if err != nil {
		return nil, nil, err
	}
	opt.DisableCache = !tracking
	// No client-side retries: a dead Redis must fail the call at once (the breaker, the
	// consumer's own retry loop and the caller decide what happens next), not hold it to
	// its deadline. With retries on, a refused connection cost ~1.5 s per request.
	opt.DisableRetry = true
	// Connections per node: rueidis's pipelines (4 on one node, 1 per Cluster node) and its
	// pool for blocking commands (the Watcher's G XREAD BLOCKs, --write-ack's WAITs), bounded
	// here; a blocking call beyond it waits for a pooled connection. With rueidis's default
	// (1,000) a node could get one connection per blocking call under way. The budget holds
	// the bound whatever rueidis does (redisconn; invredis's groupAcked says what it did).
	opt.BlockingPoolSize = groups + 12
	budget := redisconn.NewBudget(groups + 16)
	opt.DialCtxFn = budget.Dial
	client, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to redis %s: %w", jaego.RedactURL(url), err)
	}
	return client, budget, nil
}

// redisOption turns --redis into a rueidis option: a redis:// or rediss:// URL (standalone,
// with db and credentials), or a comma list of host:port seeds meaning a Cluster. rueidis
// discovers the topology either way; the list only gives it more than one seed.
func redisOption(url string) (rueidis.ClientOption, error) {
	url = strings.TrimSpace(url)
	switch {
	case url == "":
		return rueidis.ClientOption{}, fmt.Errorf("--redis (JAEGO_REDIS_URL) is required, e.g. redis://127.0.0.1:6379/0 or host1:6379,host2:6379")
	case strings.Contains(url, "://"):
		opt, err := rueidis.ParseURL(url)
		if err != nil {
			return opt, fmt.Errorf("--redis %q: %w", jaego.RedactURL(url), err)
		}
		return opt, nil
	}
	var addrs []string
	for _, a := range strings.Split(url, ",") {
		if a = strings.TrimSpace(a); a != "" {
			if !strings.Contains(a, ":") {
				return rueidis.ClientOption{}, fmt.Errorf("--redis: %q is not host:port", a)
			}
			addrs = append(addrs, a)
		}
	}
	return rueidis.ClientOption{InitAddress: addrs}, nil
}
