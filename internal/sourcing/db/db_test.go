package db_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/jaego/jaego/internal/sourcing"
	srcdb "github.com/jaego/jaego/internal/sourcing/db"
	"github.com/jaego/jaego/internal/sourcing/sourcingtest"
	"github.com/jaego/jaego/internal/sqldb"
	"github.com/jaego/jaego/internal/testenv"
)

func TestDirectory(t *testing.T) {
	for name, url := range map[string]func(t *testing.T) string{
		"postgres": func(t *testing.T) string { return testenv.Postgres(t) },
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "d.db") },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sourcingtest.Directory(t, func(t *testing.T) sourcing.Directory {
				d, err := sqldb.Open(context.Background(), url(t))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { d.Close() })
				if _, err := d.Migrate(context.Background(), nil); err != nil {
					t.Fatal(err)
				}
				return srcdb.New(d)
			})
		})
	}
}
