package jaego

import "context"

type callerKey struct{}

// WithCaller is ctx carrying the name of who asks (an API key's name, design §11): logs
// and the audit trail of admin changes say it.
func WithCaller(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, callerKey{}, name)
}

// Caller is the name WithCaller put in ctx ("" when nobody was named: access control off).
func Caller(ctx context.Context) string {
	c, _ := ctx.Value(callerKey{}).(string)
	return c
}
