package syntax

// Info describes the structure of a query, for callers that validate
// queries (e.g. detection rules) without running them.
type Info struct {
	// Tables lists the tables the query reads, in order of first use,
	// without duplicates. Names bound by let or as are not tables.
	Tables       []string
	HasJoin      bool
	HasUnion     bool
	HasSummarize bool
}

// Inspect reports which tables q reads and whether it uses join, union or
// summarize.
func Inspect(q *Query) Info {
	in := &inspector{bound: map[string]bool{}, seen: map[string]bool{}, asNames: map[string]bool{}}
	if q == nil {
		return Info{}
	}
	for _, l := range q.Lets {
		collectAs(l.Tabular, in.asNames)
	}
	collectAs(q.Body, in.asNames)
	for _, l := range q.Lets {
		if id, ok := l.Scalar.(*Ident); ok {
			// "let x = T;" aliases a table unless T is itself let-bound.
			in.table(id.Name)
		} else if l.Scalar != nil {
			in.expr(l.Scalar)
		}
		in.tabular(l.Tabular)
		in.bound[l.Name] = true
	}
	in.tabular(q.Body)
	return in.info
}

type inspector struct {
	info    Info
	bound   map[string]bool
	asNames map[string]bool
	seen    map[string]bool
}

func (in *inspector) table(name string) {
	if name == "" || in.bound[name] || in.asNames[name] || in.seen[name] {
		return
	}
	in.seen[name] = true
	in.info.Tables = append(in.info.Tables, name)
}

func (in *inspector) tabular(t Tabular) {
	switch t := t.(type) {
	case *TableRef:
		in.table(t.Name)
	case *Pipeline:
		in.tabular(t.Source)
		for _, op := range t.Ops {
			in.operator(op)
		}
	case *UnionSource:
		in.info.HasUnion = true
		for _, s := range t.Tables {
			in.tabular(s)
		}
	case *Datatable:
		for _, e := range t.Values {
			in.expr(e)
		}
	case *Print:
		in.assigns(t.Items)
	case *Range:
		in.expr(t.From)
		in.expr(t.To)
		in.expr(t.Step)
	}
}

func (in *inspector) assigns(items []Assign) {
	for _, a := range items {
		in.expr(a.Expr)
	}
}

func (in *inspector) operator(op Operator) {
	switch op := op.(type) {
	case *Where:
		in.expr(op.Pred)
	case *Extend:
		in.assigns(op.Items)
	case *Project:
		in.assigns(op.Items)
	case *Serialize:
		in.assigns(op.Items)
	case *Distinct:
		in.assigns(op.Items)
	case *MvExpand:
		for _, it := range op.Items {
			in.expr(it.Expr)
		}
	case *Summarize:
		in.info.HasSummarize = true
		in.assigns(op.Aggs)
		in.assigns(op.By)
	case *Sort:
		for _, k := range op.Keys {
			in.expr(k.Expr)
		}
	case *Top:
		in.expr(op.N)
		for _, k := range op.Keys {
			in.expr(k.Expr)
		}
	case *Join:
		in.info.HasJoin = true
		in.tabular(op.Right)
	case *Union:
		in.info.HasUnion = true
		for _, t := range op.Tables {
			in.tabular(t)
		}
	case *ParseOp:
		in.expr(op.X)
	}
}

func (in *inspector) expr(e Expr) {
	switch e := e.(type) {
	case *Unary:
		in.expr(e.X)
	case *Binary:
		in.expr(e.L)
		in.expr(e.R)
	case *InExpr:
		in.expr(e.X)
		for _, x := range e.List {
			in.expr(x)
		}
		in.tabular(e.Sub)
	case *Between:
		in.expr(e.X)
		in.expr(e.Lo)
		in.expr(e.Hi)
	case *Call:
		for _, a := range e.Args {
			in.expr(a)
		}
	case *Member:
		in.expr(e.X)
	case *Index:
		in.expr(e.X)
		in.expr(e.Index)
	case *ToScalar:
		in.tabular(e.Sub)
	}
}

func collectAs(t Tabular, names map[string]bool) {
	switch t := t.(type) {
	case *Pipeline:
		collectAs(t.Source, names)
		for _, op := range t.Ops {
			switch op := op.(type) {
			case *As:
				names[op.Name] = true
			case *Join:
				collectAs(op.Right, names)
			case *Union:
				for _, s := range op.Tables {
					collectAs(s, names)
				}
			}
		}
	case *UnionSource:
		for _, s := range t.Tables {
			collectAs(s, names)
		}
	}
}
