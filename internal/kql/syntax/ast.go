package syntax

import "github.com/kdfir/kdfir/internal/kql/table"

// Query is a parsed KQL query: let statements followed by one tabular
// expression (the body).
type Query struct {
	Lets []*Let
	Body Tabular
	Src  string // the query text, for error messages
}

// Let is "let Name = value". Exactly one of Scalar and Tabular is set.
// A bare identifier ("let x = T;") is parsed as a Scalar *Ident; the
// evaluator decides whether it names a table or a scalar.
type Let struct {
	LetPos      Pos
	Name        string
	NamePos     Pos
	Scalar      Expr
	Tabular     Tabular
	Materialize bool // let x = materialize(...)
	// Func is set (and Scalar and Tabular are not) for a user-defined
	// function: let f = (params) { body }.
	Func *FuncDef
}

// FuncDef is a user-defined function: its parameters and its body, lets
// followed by a scalar or a tabular expression.
type FuncDef struct {
	LPos    Pos
	Params  []Param
	Lets    []*Let
	Scalar  Expr
	Tabular Tabular
}

// Param is a parameter of a user-defined function: "x:string",
// "x:long = 5", or a tabular "T:(*)" / "T:(a:string, ...)".
type Param struct {
	Name    string
	NamePos Pos
	Type    table.Type // "" for a tabular parameter
	Tabular bool
	Default Expr
}

// FuncCall is a call of a user-defined function where a table is
// expected: "f(args)" as a source.
type FuncCall struct {
	NamePos Pos
	Name    string
	Args    []Expr
}

// Search is "search [kind=case_sensitive] "term"" after a pipe: the rows
// where some column has the term ("term*", "*term" and "*term*" match a
// prefix, a suffix or a substring of a word).
type Search struct {
	OpPos         Pos
	Term          string
	CaseSensitive bool
}

// SearchSource is "search [kind=...] in (T1, T2, ...) "term"": the rows
// of the tables that have the term, with the table's name in $table.
type SearchSource struct {
	SPos   Pos
	Tables []Tabular
	Search *Search
}

// MakeSeries is "make-series [kind=nonempty] Aggs on Axis [from F] [to T]
// step S [by Keys]": per group, each aggregate as an array over the bins
// of Axis, and the bins' starts as an array named after Axis. The older
// form "on Axis in range(F, T, S)" sets InRange: then T is inclusive and
// the bins are those of bin() (bin(F, S) to bin(T, S)), not F + k*S.
type MakeSeries struct {
	OpPos    Pos
	Aggs     []SeriesAgg
	Axis     Expr
	From, To Expr // nil when not given
	Step     Expr
	By       []Assign
	NonEmpty bool
	InRange  bool
}

// SeriesAgg is one "[Name =] Agg [default = Value]" of make-series.
type SeriesAgg struct {
	Assign
	Default Expr // nil: 0
}

// TopNested is "top-nested [N] of Expr by Agg [asc|desc], top-nested ...":
// the top N values of each level's expression by its aggregate, within
// each value kept by the level before.
type TopNested struct {
	OpPos  Pos
	Levels []TopNestedLevel
}

// TopNestedLevel is one "top-nested [N] of Of [with others = Others] by
// Agg [asc|desc]".
type TopNestedLevel struct {
	Pos    Pos
	N      Expr // nil: all values
	Of     Assign
	Others Expr // nil: no row for the values left out
	Agg    Assign
	Desc   bool
}

// Evaluate is "| evaluate plugin(args)"; only bag_unpack is supported.
type Evaluate struct {
	OpPos  Pos
	Plugin *Call
}

// Invoke is "| invoke f(args)": f called with the input as its first
// (tabular) argument.
type Invoke struct {
	OpPos Pos
	Call  *Call
}

// Node is anything with a position.
type Node interface{ Pos() Pos }

// ---------------------------------------------------------------------------
// Scalar expressions.

// Expr is a scalar expression.
type Expr interface {
	Node
	exprNode()
}

// Ident is a name: a column, a let-bound scalar, or ($left/$right) in joins.
type Ident struct {
	NamePos Pos
	Name    string
}

// Literal is a constant of a known type. Value is Go-native (see package
// table); nil for typed nulls such as long(null) or dynamic(null).
type Literal struct {
	LitPos Pos
	Type   table.Type
	Value  any
}

// Unary is "-x" or "+x".
type Unary struct {
	OpPos Pos
	Op    string
	X     Expr
}

// Binary is "L op R". Op is the operator as written in lowercase: "+",
// "==", "and", "has", "!contains", "matches regex", ...
type Binary struct {
	OpPos Pos
	Op    string
	L, R  Expr
}

// InExpr is "X in (list)" and its variants ("!in", "in~", "!in~",
// "has_any", "has_all"). Either List or Sub (a tabular subquery whose
// first column is the list) is set.
type InExpr struct {
	OpPos Pos
	Op    string
	X     Expr
	List  []Expr
	Sub   Tabular
}

// Between is "X between (Lo .. Hi)" or "X !between (Lo .. Hi)".
type Between struct {
	OpPos  Pos
	Not    bool
	X      Expr
	Lo, Hi Expr
}

// Call is a function call.
type Call struct {
	NamePos Pos
	Name    string
	Args    []Expr
}

// Member is "X.Name" (property access on a dynamic value).
type Member struct {
	X       Expr
	Name    string
	NamePos Pos
}

// Index is "X[Index]".
type Index struct {
	X     Expr
	Index Expr
	LPos  Pos
}

// Star is "*" as a function argument, e.g. arg_max(Timestamp, *).
type Star struct{ StarPos Pos }

// TypeOf is "typeof(T)" as used by extract() and mv-expand.
type TypeOf struct {
	TPos Pos
	Type table.Type
}

// ToScalar is toscalar(tabular): the first column of the first row.
type ToScalar struct {
	TPos Pos
	Sub  Tabular
}

func (e *Ident) Pos() Pos    { return e.NamePos }
func (e *Literal) Pos() Pos  { return e.LitPos }
func (e *Unary) Pos() Pos    { return e.OpPos }
func (e *Binary) Pos() Pos   { return e.L.Pos() }
func (e *InExpr) Pos() Pos   { return e.X.Pos() }
func (e *Between) Pos() Pos  { return e.X.Pos() }
func (e *Call) Pos() Pos     { return e.NamePos }
func (e *Member) Pos() Pos   { return e.X.Pos() }
func (e *Index) Pos() Pos    { return e.X.Pos() }
func (e *Star) Pos() Pos     { return e.StarPos }
func (e *TypeOf) Pos() Pos   { return e.TPos }
func (e *ToScalar) Pos() Pos { return e.TPos }

func (*Ident) exprNode()    {}
func (*Literal) exprNode()  {}
func (*Unary) exprNode()    {}
func (*Binary) exprNode()   {}
func (*InExpr) exprNode()   {}
func (*Between) exprNode()  {}
func (*Call) exprNode()     {}
func (*Member) exprNode()   {}
func (*Index) exprNode()    {}
func (*Star) exprNode()     {}
func (*TypeOf) exprNode()   {}
func (*ToScalar) exprNode() {}

// ---------------------------------------------------------------------------
// Tabular expressions.

// Tabular is a tabular expression.
type Tabular interface {
	Node
	tabularNode()
}

// TableRef names a table, a let-bound tabular expression or an "as" name.
type TableRef struct {
	NamePos Pos
	Name    string
}

// Pipeline is "Source | op | op ...".
type Pipeline struct {
	Source Tabular
	Ops    []Operator
}

// UnionParams are the options of union.
type UnionParams struct {
	Kind       string // "outer" (default) or "inner"
	WithSource string // name of the column holding the source table name
	// IsFuzzy (isfuzzy=true) leaves out the tables that do not exist,
	// as long as one does.
	IsFuzzy bool
}

// UnionSource is "union T1, T2, ..." at the start of a pipeline.
type UnionSource struct {
	UPos   Pos
	Params UnionParams
	Tables []Tabular
}

// Datatable is "datatable(a:string, b:long) [v, v, ...]".
type Datatable struct {
	DPos    Pos
	Columns []table.Column
	Values  []Expr
}

// Print is "print [Name =] expr, ...": a single row.
type Print struct {
	PPos  Pos
	Items []Assign
}

// Range is "range Name from A to B step S".
type Range struct {
	RPos           Pos
	Name           string
	From, To, Step Expr
}

func (t *TableRef) Pos() Pos     { return t.NamePos }
func (t *FuncCall) Pos() Pos     { return t.NamePos }
func (t *SearchSource) Pos() Pos { return t.SPos }
func (t *Pipeline) Pos() Pos     { return t.Source.Pos() }
func (t *UnionSource) Pos() Pos  { return t.UPos }
func (t *Datatable) Pos() Pos    { return t.DPos }
func (t *Print) Pos() Pos        { return t.PPos }
func (t *Range) Pos() Pos        { return t.RPos }

func (*TableRef) tabularNode()     {}
func (*FuncCall) tabularNode()     {}
func (*SearchSource) tabularNode() {}
func (*Pipeline) tabularNode()     {}
func (*UnionSource) tabularNode()  {}
func (*Datatable) tabularNode()    {}
func (*Print) tabularNode()        {}
func (*Range) tabularNode()        {}

// ---------------------------------------------------------------------------
// Tabular operators.

// Operator is one "| op ..." stage.
type Operator interface {
	Node
	operatorNode()
}

// Assign is "[Name =] Expr". Name is empty when omitted.
type Assign struct {
	Name    string
	NamePos Pos
	Expr    Expr
}

// Where is "where Pred" (also "filter").
type Where struct {
	OpPos Pos
	Pred  Expr
}

// Extend is "extend [Name =] Expr, ...".
type Extend struct {
	OpPos Pos
	Items []Assign
}

// Project is "project [Name =] Expr, ...".
type Project struct {
	OpPos Pos
	Items []Assign
}

// ColPattern is a column name, possibly with * wildcards.
type ColPattern struct {
	NamePos Pos
	Pattern string
}

// ProjectAway is "project-away Col, Pat*, ...".
type ProjectAway struct {
	OpPos Pos
	Cols  []ColPattern
}

// ProjectKeep is "project-keep Col, Pat*, ...".
type ProjectKeep struct {
	OpPos Pos
	Cols  []ColPattern
}

// ProjectReorder is "project-reorder Col, Pat*, ...".
type ProjectReorder struct {
	OpPos Pos
	Cols  []ColPattern
}

// Rename is one "New = Old" of project-rename.
type Rename struct {
	New    string
	NewPos Pos
	Old    string
	OldPos Pos
}

// ProjectRename is "project-rename New = Old, ...".
type ProjectRename struct {
	OpPos Pos
	Items []Rename
}

// MvItem is one "[Name =] Expr [to typeof(T)]" of mv-expand.
type MvItem struct {
	Name    string
	NamePos Pos
	Expr    Expr
	ToType  table.Type // "" when omitted
}

// MvExpand is "mv-expand [bagexpansion=...] [with_itemindex=N] items [limit n]".
type MvExpand struct {
	OpPos         Pos
	Items         []MvItem
	BagExpansion  string // "bag" (default) or "array"
	WithItemIndex string
	Limit         Expr
}

// MvApply is "mv-apply [with_itemindex=N] items [limit n] on (subquery)":
// the subquery runs on each row's expansion (a table of the expanded
// columns, read as MvApplyInput), and its rows follow the row's other
// columns.
type MvApply struct {
	OpPos  Pos
	Expand *MvExpand
	Sub    *Pipeline // Source is a TableRef named MvApplyInput
}

// MvApplyInput names the implicit source of an mv-apply subquery.
const MvApplyInput = "$mvapply"

// Summarize is "summarize Aggs by Keys".
type Summarize struct {
	OpPos Pos
	Aggs  []Assign
	By    []Assign
}

// SortKey is "Expr [asc|desc] [nulls first|last]".
type SortKey struct {
	Expr  Expr
	Desc  bool
	Nulls string // "", "first" or "last"
}

// Sort is "sort by keys" (also "order by").
type Sort struct {
	OpPos Pos
	Keys  []SortKey
}

// Top is "top N by keys".
type Top struct {
	OpPos Pos
	N     Expr
	Keys  []SortKey
}

// Take is "take N" (also "limit N").
type Take struct {
	OpPos Pos
	N     Expr
}

// Distinct is "distinct *" or "distinct Col, ...".
type Distinct struct {
	OpPos Pos
	All   bool
	Items []Assign
}

// Count is the "count" operator.
type Count struct{ OpPos Pos }

// JoinOn is one equality of a join condition: $left.Left == $right.Right.
type JoinOn struct {
	OnPos Pos
	Left  string
	Right string
}

// Join is "join [kind=K] Right on conditions", or with Lookup set
// "lookup [kind=leftouter|inner] Right on conditions": a join whose
// output has the key columns once (the left ones), kind leftouter when
// not given.
type Join struct {
	OpPos  Pos
	Kind   string // as written; "" means innerunique (leftouter for lookup)
	Right  Tabular
	On     []JoinOn
	Lookup bool
}

// Union is "| union [params] T, ...".
type Union struct {
	OpPos  Pos
	Params UnionParams
	Tables []Tabular
}

// ParsePart is one element of a parse pattern.
type ParsePart struct {
	PartPos Pos
	Star    bool       // "*"
	Literal string     // a string constant (when not Star and Column == "")
	Column  string     // a column to extract
	Type    table.Type // its type (string when omitted)
}

// ParseOp is "parse [kind=K] [flags=F] Expr with pattern" (also parse-where).
type ParseOp struct {
	OpPos Pos
	Where bool   // parse-where: drop rows that do not match
	Kind  string // "simple" (default), "regex" or "relaxed"
	Flags string
	X     Expr
	Parts []ParsePart
}

// As is "as Name".
type As struct {
	OpPos   Pos
	Name    string
	NamePos Pos
}

// GetSchema is the "getschema" operator.
type GetSchema struct{ OpPos Pos }

// Render is the "render ..." operator; it does not change the result.
type Render struct{ OpPos Pos }

// Serialize is "serialize [Name = Expr, ...]"; it behaves like extend.
type Serialize struct {
	OpPos Pos
	Items []Assign
}

func (o *Where) Pos() Pos          { return o.OpPos }
func (o *Extend) Pos() Pos         { return o.OpPos }
func (o *Project) Pos() Pos        { return o.OpPos }
func (o *ProjectAway) Pos() Pos    { return o.OpPos }
func (o *ProjectKeep) Pos() Pos    { return o.OpPos }
func (o *ProjectReorder) Pos() Pos { return o.OpPos }
func (o *ProjectRename) Pos() Pos  { return o.OpPos }
func (o *MvExpand) Pos() Pos       { return o.OpPos }
func (o *Summarize) Pos() Pos      { return o.OpPos }
func (o *Sort) Pos() Pos           { return o.OpPos }
func (o *Top) Pos() Pos            { return o.OpPos }
func (o *Take) Pos() Pos           { return o.OpPos }
func (o *Distinct) Pos() Pos       { return o.OpPos }
func (o *Count) Pos() Pos          { return o.OpPos }
func (o *Join) Pos() Pos           { return o.OpPos }
func (o *MvApply) Pos() Pos        { return o.OpPos }
func (o *Invoke) Pos() Pos         { return o.OpPos }
func (o *Evaluate) Pos() Pos       { return o.OpPos }
func (o *TopNested) Pos() Pos      { return o.OpPos }
func (o *MakeSeries) Pos() Pos     { return o.OpPos }
func (o *Search) Pos() Pos         { return o.OpPos }
func (o *Union) Pos() Pos          { return o.OpPos }
func (o *ParseOp) Pos() Pos        { return o.OpPos }
func (o *As) Pos() Pos             { return o.OpPos }
func (o *GetSchema) Pos() Pos      { return o.OpPos }
func (o *Render) Pos() Pos         { return o.OpPos }
func (o *Serialize) Pos() Pos      { return o.OpPos }

func (*Where) operatorNode()          {}
func (*Extend) operatorNode()         {}
func (*Project) operatorNode()        {}
func (*ProjectAway) operatorNode()    {}
func (*ProjectKeep) operatorNode()    {}
func (*ProjectReorder) operatorNode() {}
func (*ProjectRename) operatorNode()  {}
func (*MvExpand) operatorNode()       {}
func (*Summarize) operatorNode()      {}
func (*Sort) operatorNode()           {}
func (*Top) operatorNode()            {}
func (*Take) operatorNode()           {}
func (*Distinct) operatorNode()       {}
func (*Count) operatorNode()          {}
func (*Join) operatorNode()           {}
func (*MvApply) operatorNode()        {}
func (*Invoke) operatorNode()         {}
func (*Evaluate) operatorNode()       {}
func (*TopNested) operatorNode()      {}
func (*MakeSeries) operatorNode()     {}
func (*Search) operatorNode()         {}
func (*Union) operatorNode()          {}
func (*ParseOp) operatorNode()        {}
func (*As) operatorNode()             {}
func (*GetSchema) operatorNode()      {}
func (*Render) operatorNode()         {}
func (*Serialize) operatorNode()      {}
