// Package syntax is the front end of kdfir's KQL (Kusto Query Language)
// engine: lexer, AST and parser. It does no evaluation and knows nothing
// about storage.
//
// Parse turns query text into a *Query. Every error found is reported: the
// returned error is an *ErrorList whose Lines() are "line:col: message"
// and whose Error() also shows each offending query line with a caret
// under the column. Warnings (for instance typographic quotes “...” pasted
// from web pages, accepted as string quotes) are returned alongside.
//
// Inspect reports which tables a query reads and whether it uses join,
// union or summarize.
package syntax
