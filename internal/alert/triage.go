package alert

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Triage statuses: an alert is new until someone takes it, active while it
// is worked on, and closed with a classification.
const (
	StatusNew    = "new"
	StatusActive = "active"
	StatusClosed = "closed"
)

// Classifications of a closed alert, as Sentinel and Defender XDR name
// them.
const (
	TruePositive   = "true-positive"
	BenignPositive = "benign-positive"
	FalsePositive  = "false-positive"
)

var (
	statuses        = []string{StatusNew, StatusActive, StatusClosed}
	classifications = []string{TruePositive, BenignPositive, FalsePositive}
)

// Triage is where an analyst stands with an alert, with every change that
// led there.
type Triage struct {
	Status         string         `json:"status"`
	Owner          string         `json:"owner,omitempty"`
	Classification string         `json:"classification,omitempty"`
	Comments       []Comment      `json:"comments,omitempty"`
	History        []TriageChange `json:"history,omitempty"`
}

// Comment is an analyst's note on an alert.
type Comment struct {
	By   string    `json:"by"`
	At   time.Time `json:"at"`
	Text string    `json:"text"`
}

// TriageChange records who changed which triage field, when, and from
// what to what.
type TriageChange struct {
	By    string    `json:"by"`
	At    time.Time `json:"at"`
	Field string    `json:"field"`
	From  string    `json:"from"`
	To    string    `json:"to"`
}

// TriageUpdate is a change an analyst asks for; nil fields stay as they
// are.
type TriageUpdate struct {
	Status         *string `json:"status,omitempty"`
	Owner          *string `json:"owner,omitempty"`
	Classification *string `json:"classification,omitempty"`
	Comment        string  `json:"comment,omitempty"`
}

// TriageError is an update that does not apply: an unknown value, or
// closing without a classification.
type TriageError struct{ Msg string }

func (e *TriageError) Error() string { return e.Msg }

func triageErrorf(format string, args ...any) error {
	return &TriageError{Msg: fmt.Sprintf(format, args...)}
}

// ErrNotFound is returned for an unknown alert id.
var ErrNotFound = errors.New("no such alert")

// MaxComment bounds a comment's length, in bytes.
const MaxComment = 8 << 10

// Validate checks an update on its own: known values, and a comment of
// bounded length.
func (u TriageUpdate) Validate() error {
	if u.Status != nil && !slices.Contains(statuses, *u.Status) {
		return triageErrorf("status %q: want %s", *u.Status, strings.Join(statuses, ", "))
	}
	if u.Classification != nil && *u.Classification != "" && !slices.Contains(classifications, *u.Classification) {
		return triageErrorf("classification %q: want %s", *u.Classification, strings.Join(classifications, ", "))
	}
	if u.Owner != nil && len(*u.Owner) > 256 {
		return triageErrorf("owner is longer than 256 bytes")
	}
	if len(u.Comment) > MaxComment {
		return triageErrorf("comment is longer than %d bytes", MaxComment)
	}
	if u.Status == nil && u.Owner == nil && u.Classification == nil && strings.TrimSpace(u.Comment) == "" {
		return triageErrorf("nothing to change: give status, owner, classification or comment")
	}
	return nil
}

// ApplyTriage applies u to a's triage on behalf of by, recording every
// field it changes. Closing needs a classification (given now or
// before); reopening keeps the classification in the history and clears
// it. Taking a new alert (setting an owner) makes it active.
func ApplyTriage(a *Alert, u TriageUpdate, by string, at time.Time) error {
	if err := u.Validate(); err != nil {
		return err
	}
	t := a.Triage
	if t == nil {
		t = &Triage{Status: StatusNew}
	}
	next := *t
	if u.Owner != nil {
		next.Owner = *u.Owner
		if next.Status == StatusNew && u.Status == nil && next.Owner != "" {
			next.Status = StatusActive
		}
	}
	if u.Status != nil {
		next.Status = *u.Status
	}
	if u.Classification != nil {
		next.Classification = *u.Classification
	}
	switch {
	case next.Status == StatusClosed && next.Classification == "":
		return triageErrorf("closing needs a classification: %s", strings.Join(classifications, ", "))
	case next.Status != StatusClosed && u.Classification != nil && *u.Classification != "":
		return triageErrorf("a classification goes with closing (status %q)", StatusClosed)
	case next.Status != StatusClosed:
		next.Classification = ""
	}
	next.History = slices.Clone(t.History)
	for _, f := range []struct{ name, from, to string }{
		{"status", t.Status, next.Status},
		{"owner", t.Owner, next.Owner},
		{"classification", t.Classification, next.Classification},
	} {
		if f.from != f.to {
			next.History = append(next.History, TriageChange{By: by, At: at, Field: f.name, From: f.from, To: f.to})
		}
	}
	next.Comments = slices.Clone(t.Comments)
	if c := strings.TrimSpace(u.Comment); c != "" {
		next.Comments = append(next.Comments, Comment{By: by, At: at, Text: c})
		next.History = append(next.History, TriageChange{By: by, At: at, Field: "comment", To: c})
	}
	a.Triage = &next
	return nil
}

// StatusOf is an alert's triage status ("new" when it has none).
func (a *Alert) StatusOf() string {
	if a.Triage == nil || a.Triage.Status == "" {
		return StatusNew
	}
	return a.Triage.Status
}

// Filter selects alerts for a queue. Empty fields select everything.
type Filter struct {
	Status   []string  // new, active, closed
	Severity []string  // informational, low, medium, high
	Source   []string  // defender, sentinel, falco, kdfir
	Cluster  string    // a cluster name or Azure ResourceId
	Rule     string    // a kdfir rule id
	Since    time.Time // received at or after
	Until    time.Time // received before
	Limit    int       // at most this many, newest first (default 100, at most 1000)
}
