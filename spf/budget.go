package spf

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
)

// MaxQueries is the most DNS questions one check may cause, the bound that
// RFC 7208 §4.6.4 sets: the record's TXT lookup, then for each of the
// MaxDNSTerms terms its own lookup and up to MaxMXNames (or MaxPTRNames)
// address lookups. The exp= lookup comes on top, as §4.6.4 does not count it.
const MaxQueries = 1 + MaxDNSTerms*(1+MaxMXNames)

// ErrQueryBudget is returned (wrapped) by a Resolver that would have to send
// a question beyond the check's QueryBudget. The check ends in temperror.
var ErrQueryBudget = errors.New("spf: more than " + strconv.Itoa(MaxQueries) + " DNS queries for one check")

// QueryBudget is what is left of a check's MaxQueries. Each check puts one in
// its context. A Resolver takes one unit for each question it sends to a
// server (answers from its cache are free; the retries of one question to
// other servers are not questions of their own), so that a lookup costing
// several questions, as a CNAME chain handed out one hop at a time does,
// cannot take a check past RFC 7208's bound whatever the servers do.
type QueryBudget struct{ left atomic.Int32 }

// Take uses up one question; false means none is left and the question must
// not be sent.
func (b *QueryBudget) Take() bool { return b.left.Add(-1) >= 0 }

type budgetKey struct{}

// BudgetFromContext returns the QueryBudget of the check ctx belongs to, or
// nil outside a check.
func BudgetFromContext(ctx context.Context) *QueryBudget {
	b, _ := ctx.Value(budgetKey{}).(*QueryBudget)
	return b
}

// WithQueryBudget returns a context carrying a QueryBudget of n questions,
// and the budget. Checks make their own (of MaxQueries); it is exported for
// resolvers' tests.
func WithQueryBudget(ctx context.Context, n int) (context.Context, *QueryBudget) {
	b := &QueryBudget{}
	b.left.Store(int32(n))
	return context.WithValue(ctx, budgetKey{}, b), b
}
