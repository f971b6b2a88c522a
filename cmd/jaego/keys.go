package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jaego/jaego/internal/auth"
)

// runKeys is `jaego keys new --name NAME --scopes read,write`: a new random API key, printed
// once, and the line that gives it to the keys file (design §11).
func runKeys(_ context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "new" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			args = []string{"new", "-h"}
		} else {
			return errors.New("usage: jaego keys new --name NAME --scopes read[,write][,admin]")
		}
	}
	var name, scopes string
	f := newEnvFlags("keys new", getenv, stderr)
	f.String(&name, "name", "JAEGO_KEY_NAME", "", "who the key is for (logged with every admin change it makes): 1–64 of A-Z a-z 0-9 _ . @ -")
	f.String(&scopes, "scopes", "JAEGO_KEY_SCOPES", "read", "comma-separated: read (stock, changes, gifts), write (events, reservations), admin (/v1/admin/)")
	if err := f.Parse(args[1:]); err != nil {
		return err
	}
	if name == "" {
		return errors.New("--name is required: who the key is for")
	}
	var ss []auth.Scope
	for _, s := range strings.Split(scopes, ",") {
		ss = append(ss, auth.Scope(strings.TrimSpace(s)))
	}
	token, line, err := auth.NewKey(name, ss)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "key (shown once; give it to %s, keep it secret):\n  %s\nadd this line to the keys file, then send jaego SIGHUP (kill -HUP <pid>):\n  %s\n", name, token, line)
	return nil
}
