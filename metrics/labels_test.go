package metrics

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spfmilter/spfmilter/milter"
	"github.com/spfmilter/spfmilter/spf"
	"github.com/spfmilter/spfmilter/spf/resolver"
)

// constValues reads the string constants declared in the non-test files of
// the package in dir and returns the values of those keep selects, by
// constant name and declared type ("" when untyped).
func constValues(t *testing.T, dir string, keep func(name, typ string) bool) []string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				typ := ""
				if id, ok := vs.Type.(*ast.Ident); ok {
					typ = id.Name
				}
				for i, name := range vs.Names {
					if i >= len(vs.Values) || !keep(name.Name, typ) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					vals = append(vals, v)
				}
			}
		}
	}
	slices.Sort(vals)
	return vals
}

func sameSet(t *testing.T, what string, list, consts []string) {
	t.Helper()
	l, c := slices.Clone(list), slices.Clone(consts)
	slices.Sort(l)
	slices.Sort(c)
	if !slices.Equal(l, c) {
		t.Errorf("%s: the list has %q, the constants are %q", what, l, c)
	}
}

// Each label set metrics uses is the list its library keeps, and each list
// holds exactly the constants the library reports with: a new constant
// without a list entry (which metrics would count as "other") fails here.
func TestLabelListsMatchConstants(t *testing.T) {
	typed := func(typ string) func(string, string) bool {
		return func(_, tp string) bool { return tp == typ }
	}
	prefixed := func(p string) func(string, string) bool {
		return func(name, _ string) bool { return strings.HasPrefix(name, p) }
	}
	sameSet(t, "spf results", strs(spf.Results()), constValues(t, "../spf", typed("Result")))
	sameSet(t, "identities", milter.IdentityLabels(), constValues(t, "../spf", typed("Identity")))
	sameSet(t, "resolver outcomes", resolver.Outcomes(), constValues(t, "../spf/resolver", prefixed("Outcome")))
	sameSet(t, "skip reasons", milter.SkipReasons(), constValues(t, "../milter", prefixed("Skip")))
	sameSet(t, "milter stages", milter.StageLabels(), constValues(t, "../milter", prefixed("Stage")))
	sameSet(t, "milter actions", milter.ActionLabels(), constValues(t, "../milter", func(name, typ string) bool {
		return typ == "Action" || name == "ActionSkip"
	}))

	// And metrics takes its sets from those lists.
	sameSet(t, "identity label", identities, constValues(t, "../spf", typed("Identity")))
	sameSet(t, "result label", results, append(constValues(t, "../spf", typed("Result")), milter.ResultNotChecked))
	sameSet(t, "action label", actions, milter.ActionLabels())
	sameSet(t, "reason label", reasons, append(append([]string{reasonNone}, milter.SkipReasons()...), milter.ReasonDryRun, milter.ReasonNeverReject, milter.ExemptForwarder, milter.ExemptAllowHELO, milter.ReasonRelayNoReceived))
	sameSet(t, "cause label", causes, constValues(t, "../spf", typed("Cause")))
	sameSet(t, "stage label", stages, milter.StageLabels())
	sameSet(t, "outcome label", outcomes, resolver.Outcomes())
}

// Every label value the milter passes to its Observer is a constant of one
// of the lists: no call site in milter/ passes a string literal.
func TestMilterObserverCallsUseConstants(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("../milter/*.go")
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.SelectorExpr); !ok || x.Sel.Name != "obs" {
				if id, ok := sel.X.(*ast.Ident); !ok || id.Name != "obs" {
					return true
				}
			}
			calls++
			for _, a := range call.Args {
				if lit, ok := a.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					t.Errorf("%s: obs.%s is passed the literal %s", fset.Position(lit.Pos()), sel.Sel.Name, lit.Value)
				}
			}
			return true
		})
	}
	if calls == 0 {
		t.Fatal("found no Observer calls in milter/")
	}
}
