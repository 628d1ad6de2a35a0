// Command score runs the built-in rule pack on the labelled third-party
// audit fixtures (../shared/data) and prints a scorecard: per corpus and
// per behaviour, the true-positive rate on the positives and the
// false-alarm rate on the negatives. The labels are the fixtures' own
// (Falco's EXPECTED.md, Panther's INDEX.md); mapping.yaml says which of
// their rules each behaviour of the pack answers to. Run it with make score.
//
//	score [-data ../shared/data] [-map hack/score/mapping.yaml] [-check]
//
// -check exits 1 when a behaviour the pack claims misses a target
// (95% detected, at most 2% false alarms). Rules shipped disabled are
// scored as if enabled, and their behaviours are not claimed.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/detect"
)

// Mapping is mapping.yaml.
type Mapping struct {
	Behaviours []Behaviour `yaml:"behaviours"`
	// FalcoRulesFiles maps a Falco rules file that adds exceptions to the
	// kdfir exceptions file (relative to mapping.yaml) that does the same.
	FalcoRulesFiles map[string]string `yaml:"falcoRulesFiles"`
	// OutOfScope lists labelled cases that the pack reads differently on
	// purpose, with the reason; they are counted apart, not hidden.
	OutOfScope map[string]string `yaml:"outOfScope"`
}

// Behaviour is one thing the pack claims to detect.
type Behaviour struct {
	Name    string   `yaml:"name"`
	Rules   []string `yaml:"rules"`   // kdfir rules; any firing counts
	Falco   []string `yaml:"falco"`   // Falco rule names
	Panther []string `yaml:"panther"` // Panther RuleIDs
	ATTACK  string   `yaml:"attack"`  // MITRE ATT&CK technique
	// Fields, when set, counts only alerts whose field has one of the
	// values (the exec rule's Class, for one kind of command).
	Fields map[string][]string `yaml:"fields"`
}

// labelled is one labelled case: a file, whether the source alerts, and
// the source rules it is about (for Falco negatives: none, meaning every
// behaviour).
type labelled struct {
	corpus, file, name string
	positive           bool
	rules              []string
	exceptions         []string // kdfir exceptions files to apply
}

type tally struct{ pos, tp, neg, fp, oos int }

func main() {
	data := flag.String("data", "../shared/data", "directory of the labelled corpora")
	mapPath := flag.String("map", "hack/score/mapping.yaml", "behaviour mapping")
	check := flag.Bool("check", false, "exit 1 when a claimed behaviour misses 95% detected or 2% false alarms")
	verbose := flag.Bool("v", false, "list every miss and false alarm")
	flag.Parse()
	if err := run(os.Stdout, *data, *mapPath, *check, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "score:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, data, mapPath string, check, verbose bool) error {
	var m Mapping
	b, err := os.ReadFile(mapPath)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("%s: %w", mapPath, err)
	}
	falco, err := falcoCases(filepath.Join(data, "falco-k8s-audit"), m, filepath.Dir(mapPath))
	if err != nil {
		return err
	}
	panther, err := pantherCases(filepath.Join(data, "panther-k8s-audit"))
	if err != nil {
		return err
	}
	s := &scorer{dir: data, fired: map[string]map[string][]map[string]any{}, needed: map[string]bool{}}
	for _, bh := range m.Behaviours {
		for _, r := range bh.Rules {
			s.needed[r] = true
		}
	}
	pack, err := detect.Builtin(nil)
	if err != nil {
		return err
	}
	off := map[string]bool{}
	for _, r := range pack {
		off[r.ID] = r.Disabled
	}
	failed := false
	for _, c := range []struct {
		name, title string
		cases       []labelled
		sourceRules func(Behaviour) []string
	}{
		{"falco-k8s-audit", "Falco (EXPECTED.md, 65 test cases of its rules)", falco, func(b Behaviour) []string { return b.Falco }},
		{"panther-k8s-audit", "Panther (INDEX.md, 287 test logs)", panther, func(b Behaviour) []string { return b.Panther }},
	} {
		all := map[string]bool{}
		for _, lc := range c.cases {
			for _, r := range lc.rules {
				all[r] = true
			}
		}
		covered := map[string]bool{}
		var total tally
		fmt.Fprintf(w, "\n### %s\n\n| behaviour | kdfir rules | detected | false alarms | out of scope |\n|---|---|---|---|---|\n", c.title)
		for _, bh := range m.Behaviours {
			src := c.sourceRules(bh)
			if len(src) == 0 {
				continue
			}
			var t tally
			var misses, alarms []string
			for _, lc := range c.cases {
				about := len(lc.rules) == 0 && !lc.positive // a Falco negative is about every behaviour
				for _, r := range lc.rules {
					about = about || slices.Contains(src, r)
				}
				if !about {
					continue
				}
				if why, ok := m.OutOfScope[lc.file]; ok && lc.positive {
					t.oos++
					_ = why
					continue
				} else if ok && !lc.positive && len(lc.rules) > 0 {
					t.oos++
					continue
				}
				fired, err := s.fires(lc, bh.Rules, bh.Fields)
				if err != nil {
					return err
				}
				if lc.positive {
					t.pos++
					if fired {
						t.tp++
					} else {
						misses = append(misses, lc.file+" ("+lc.name+")")
					}
				} else {
					t.neg++
					if fired {
						t.fp++
						alarms = append(alarms, lc.file+" ("+lc.name+")")
					}
				}
			}
			if t.pos > 0 {
				for _, r := range src {
					covered[r] = true
				}
			}
			total.pos, total.tp, total.neg, total.fp, total.oos = total.pos+t.pos, total.tp+t.tp, total.neg+t.neg, total.fp+t.fp, total.oos+t.oos
			if t.pos == 0 && t.neg == 0 {
				continue
			}
			name, disabled := bh.Name, true
			for _, r := range bh.Rules {
				disabled = disabled && off[r]
			}
			if disabled {
				name += " (rule off by default; scored as if enabled)"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %d |\n", name, strings.Join(bh.Rules, ", "), rate(t.tp, t.pos), rate(t.fp, t.neg), t.oos)
			if !disabled && ((t.pos > 0 && float64(t.tp) < 0.95*float64(t.pos)) || (t.neg > 0 && float64(t.fp) > 0.02*float64(t.neg))) {
				failed = true
			}
			if verbose {
				for _, x := range misses {
					fmt.Fprintf(w, "|   missed: %s | | | | |\n", x)
				}
				for _, x := range alarms {
					fmt.Fprintf(w, "|   false alarm: %s | | | | |\n", x)
				}
			}
		}
		// Negatives count once per case in the total, not once per behaviour.
		fmt.Fprintf(w, "| **all** | | **%s** | | %d |\n", rate(total.tp, total.pos), total.oos)
		negs, fps, err := s.caseFalseAlarms(c.cases, m, off)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "\nBehaviours covered: %d of %d %s rules. Negatives with any alarm of a claimed behaviour: %s.\n",
			len(covered), len(all), strings.Split(c.title, " ")[0], rate(fps, negs))
		if verbose {
			for _, x := range s.caseAlarms {
				fmt.Fprintf(w, "- alarm on a negative: %s\n", x)
			}
		}
		s.caseAlarms = nil
	}
	if check && failed {
		return errors.New("a claimed behaviour misses its target (95% detected, at most 2% false alarms)")
	}
	return nil
}

func rate(n, d int) string {
	if d == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f%% (%d/%d)", 100*float64(n)/float64(d), n, d)
}

type scorer struct {
	dir        string
	fired      map[string]map[string][]map[string]any // corpus/file + exceptions → rule id → alert fields
	caseAlarms []string                               // negatives with an alarm, for -v
	needed     map[string]bool                        // the rules the mapping names
}

var fixtureTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// fires reports whether any of the rules raises an alert (with the
// fields, when given) on the case's file.
func (s *scorer) fires(lc labelled, rules []string, fields map[string][]string) (bool, error) {
	f, err := s.firedOn(lc)
	if err != nil {
		return false, err
	}
	for _, r := range rules {
	alerts:
		for _, a := range f[r] {
			for k, vals := range fields {
				if !slices.Contains(vals, fmt.Sprint(a[k])) {
					continue alerts
				}
			}
			return true, nil
		}
	}
	return false, nil
}

func (s *scorer) firedOn(lc labelled) (map[string][]map[string]any, error) {
	key := lc.corpus + "/" + lc.file + "\x00" + strings.Join(lc.exceptions, ",")
	if f, ok := s.fired[key]; ok {
		return f, nil
	}
	rules, err := detect.Builtin(nil)
	if err != nil {
		return nil, err
	}
	for _, x := range lc.exceptions {
		t, err := detect.LoadTuning(x)
		if err != nil {
			return nil, err
		}
		if err := t.Apply(rules); err != nil {
			return nil, err
		}
	}
	fh, err := os.Open(filepath.Join(s.dir, lc.corpus, lc.file))
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	evs, _, err := audit.DecodeAll(fh, audit.Options{Cluster: lc.corpus, AssumeTime: fixtureTime})
	if err != nil {
		return nil, err
	}
	f := map[string][]map[string]any{}
	src := audit.NewBatchSource(evs)
	for _, r := range rules {
		if !s.needed[r.ID] {
			continue
		}
		alerts, err := (&detect.Engine{}).Evaluate(context.Background(), r, src)
		if err != nil {
			return nil, fmt.Errorf("rule %s on %s: %w", r.ID, lc.file, err)
		}
		for _, a := range alerts {
			f[r.ID] = append(f[r.ID], a.Fields)
		}
	}
	s.fired[key] = f
	return f, nil
}

// caseFalseAlarms counts the negatives (once each) and those on which a
// rule of a behaviour the case is about fired.
func (s *scorer) caseFalseAlarms(cases []labelled, m Mapping, off map[string]bool) (int, int, error) {
	negs, fps := 0, 0
	for _, lc := range cases {
		if lc.positive {
			continue
		}
		if _, ok := m.OutOfScope[lc.file]; ok && len(lc.rules) > 0 {
			continue
		}
		var about []Behaviour
		for _, bh := range m.Behaviours {
			src := slices.Concat(bh.Falco, bh.Panther)
			is := len(lc.rules) == 0
			for _, r := range lc.rules {
				is = is || slices.Contains(src, r)
			}
			var on []string
			for _, r := range bh.Rules {
				if !off[r] {
					on = append(on, r)
				}
			}
			if is && len(src) > 0 && len(on) > 0 {
				bh.Rules = on
				about = append(about, bh)
			}
		}
		if len(about) == 0 {
			continue
		}
		negs++
		for _, bh := range about {
			fired, err := s.fires(lc, bh.Rules, bh.Fields)
			if err != nil {
				return 0, 0, err
			}
			if fired {
				fps++
				s.caseAlarms = append(s.caseAlarms, lc.file+" ("+lc.name+")")
				break
			}
		}
	}
	return negs, fps, nil
}

// falcoCases reads EXPECTED.md's per-test-case table.
func falcoCases(dir string, m Mapping, mapDir string) ([]labelled, error) {
	rows, err := tableRows(filepath.Join(dir, "EXPECTED.md"), 7)
	if err != nil {
		return nil, err
	}
	var out []labelled
	for _, c := range rows {
		if !strings.Contains(c[5], "falco_rules.yaml") {
			continue // json_pointer_correct_parse tests Falco's rule syntax, not a behaviour
		}
		lc := labelled{corpus: "falco-k8s-audit", file: unquote(c[0]), name: c[1], positive: c[2] == "True"}
		if c[4] != "—" && c[4] != "" {
			for _, part := range strings.Split(c[4], ", ") {
				name, _, _ := strings.Cut(part, ":")
				lc.rules = append(lc.rules, strings.TrimSpace(name))
			}
		}
		for _, rf := range strings.Split(c[5], ",") {
			rf = unquote(strings.TrimSpace(rf))
			if x, ok := m.FalcoRulesFiles[rf]; ok {
				lc.exceptions = append(lc.exceptions, filepath.Join(mapDir, x))
			}
		}
		sort.Strings(lc.exceptions)
		out = append(out, lc)
	}
	if len(out) != 65 {
		return nil, fmt.Errorf("EXPECTED.md: %d test cases of Falco's rules, want 65", len(out))
	}
	return out, nil
}

// pantherCases reads INDEX.md's table of test logs.
func pantherCases(dir string) ([]labelled, error) {
	rows, err := tableRows(filepath.Join(dir, "INDEX.md"), 5)
	if err != nil {
		return nil, err
	}
	var out []labelled
	for _, c := range rows {
		out = append(out, labelled{corpus: "panther-k8s-audit", file: unquote(c[0]), name: c[2],
			positive: c[3] == "true", rules: []string{unquote(c[1])}})
	}
	if len(out) != 287 {
		return nil, fmt.Errorf("INDEX.md: %d test logs, want 287", len(out))
	}
	return out, nil
}

// tableRows returns the cells of the Markdown table rows whose first cell
// names a .json file and that have exactly n cells.
func tableRows(path string, n int) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows [][]string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if len(cells) != n || !strings.HasSuffix(unquote(cells[0]), ".json") {
			continue
		}
		rows = append(rows, cells)
	}
	return rows, sc.Err()
}

func unquote(s string) string { return strings.Trim(s, "`") }
