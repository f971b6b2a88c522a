package db_test

import (
	"testing"

	"github.com/jaego/jaego/internal/sourcing"
	srcdb "github.com/jaego/jaego/internal/sourcing/db"
	"github.com/jaego/jaego/internal/sourcing/sourcingtest"
	"github.com/jaego/jaego/internal/sqldb"
	"github.com/jaego/jaego/internal/testenv"
)

func TestDirectory(t *testing.T) {
	testenv.SQLDatabases(t, func(t *testing.T, open func(*testing.T) *sqldb.DB) {
		sourcingtest.Directory(t, func(t *testing.T) sourcing.Directory { return srcdb.New(open(t)) })
	})
}
