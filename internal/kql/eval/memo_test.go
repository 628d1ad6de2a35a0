package eval

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// TestMatchMemo holds the remembered answers of a constant regex to the
// regex's own: repeated values, more distinct values than it remembers,
// and values too long to remember.
func TestMatchMemo(t *testing.T) {
	rx := regexp.MustCompile(`(?i)^ua-[35]|xx$`)
	m := &matchMemo{seen: map[string]bool{}}
	var in []string
	for i := range 3 * matchMemoSize {
		in = append(in, fmt.Sprintf("UA-%d", i%10), fmt.Sprintf("ua-%d", i))
		if i%100 == 0 {
			in = append(in, "ua-1"+strings.Repeat("x", matchMemoLen+i%1000))
		}
	}
	for pass := range 2 {
		for _, s := range in {
			if got, want := m.match(rx, s), rx.MatchString(s); got != want {
				t.Fatalf("pass %d: match(%.40q) = %v, want %v", pass, s, got, want)
			}
		}
	}
	if len(m.seen) != matchMemoSize {
		t.Errorf("remembered %d answers, want the limit %d", len(m.seen), matchMemoSize)
	}
	// Through a query: a column of few values, row after row.
	res, err := run(t, fixtureSource(), `range i from 1 to 20000 step 1 | extend s = strcat("ua-", i % 7) | where s matches regex @"^ua-[35]$" | count`)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for i := 1; i <= 20000; i++ {
		if i%7 == 3 || i%7 == 5 {
			want++
		}
	}
	if got := fmt.Sprint(res.Rows); got != fmt.Sprintf("[[%d]]", want) {
		t.Errorf("count %s, want %d", got, want)
	}
}
