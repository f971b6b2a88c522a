package sourcing

import (
	"context"
	"time"
)

// The states of a sourcing hold's record.
const (
	SagaBegun = "begun" // this call holds under the id now
	SagaHeld  = "held"  // a call under the id was answered with its parts held
	SagaBusy  = "busy"  // another call holds under the id (or died holding: see Until)
)

// Begun is what Sagas.Begin found.
type Begun struct {
	State string
	// First: the parts of this call are numbered from First+1 (SagaBegun).
	First int
	// Token: this call's, for Finish (SagaBegun).
	Token string
	// Until: when the parts of the call that holds have expired at the latest (SagaBusy).
	Until time.Time
	// Plan: the plan held, as Finish stored it (SagaHeld).
	Plan []byte
}

// Sagas keeps the record of each sourcing hold (design §15), so that one call at a time
// holds under a reservation id and a retry of an answered call answers the same.
//
// Contract: Begin under an id that has no record, or whose record was released, or whose
// holding call's Until has passed, begins (numbering after every part an earlier call may
// have used: block parts each); under a held record it answers SagaHeld; otherwise SagaBusy.
// Finish ends the call's record as held (with its plan) or released, and reports false
// when another call took the record over meanwhile.
type Sagas interface {
	Begin(ctx context.Context, id string, until time.Time, block int) (Begun, error)
	Finish(ctx context.Context, id, token string, held bool, plan []byte) (bool, error)
}
