package playbook

import (
	"context"
	"fmt"

	"github.com/kdfir/kdfir/internal/alert"
)

// StepRequest is one step to run on one target entity.
type StepRequest struct {
	Alert     *alert.Alert
	Playbook  string
	Step      Step
	StepIndex int
	Target    alert.Entity
	DryRun    bool
}

// StepResult is what running or holding a step produced.
type StepResult struct {
	ActionID string `json:"actionId,omitempty"`
	Status   string `json:"status"`
	Message  string `json:"message,omitempty"`
}

// Executor carries out steps; the service implements it on top of the
// response and evidence libraries and the journal.
type Executor interface {
	// Run performs the step now.
	Run(ctx context.Context, req StepRequest) (StepResult, error)
	// Hold records the step as waiting for approval.
	Hold(ctx context.Context, req StepRequest) (StepResult, error)
}

// Engine runs playbooks.
type Engine struct {
	Playbooks []*Playbook
	Exec      Executor
}

// StepOutcome reports one step on one target.
type StepOutcome struct {
	Step   string       `json:"step"`
	Action string       `json:"action"`
	Target alert.Entity `json:"target"`
	StepResult
	Error string `json:"error,omitempty"`
}

// Outcome reports one playbook's run.
type Outcome struct {
	Playbook string        `json:"playbook"`
	DryRun   bool          `json:"dryRun,omitempty"`
	Steps    []StepOutcome `json:"steps"`
	// Waiting is true when the run stopped at a step that needs approval.
	Waiting bool `json:"waiting,omitempty"`
	// Stopped is true when a failing step with on_failure: stop ended it.
	Stopped bool `json:"stopped,omitempty"`
}

// Matching returns the playbooks that run on the alert.
func (e *Engine) Matching(a *alert.Alert) []*Playbook {
	var out []*Playbook
	for _, p := range e.Playbooks {
		if p.Matches(a) {
			out = append(out, p)
		}
	}
	return out
}

// Run runs every matching playbook on the alert, each from its first step.
func (e *Engine) Run(ctx context.Context, a *alert.Alert) []Outcome {
	var out []Outcome
	for _, p := range e.Matching(a) {
		out = append(out, e.run(ctx, p, a, 0))
	}
	return out
}

// Find returns a playbook by name.
func (e *Engine) Find(name string) (*Playbook, bool) {
	for _, p := range e.Playbooks {
		if p.Name == name {
			return p, true
		}
	}
	return nil, false
}

// Continue resumes a playbook after its step stepIndex was approved and
// run: it runs the steps after it.
func (e *Engine) Continue(ctx context.Context, a *alert.Alert, playbook string, stepIndex int) (Outcome, error) {
	p, ok := e.Find(playbook)
	if !ok {
		return Outcome{}, fmt.Errorf("playbook %q is no longer loaded", playbook)
	}
	if stepIndex < 0 || stepIndex >= len(p.Steps) {
		return Outcome{}, fmt.Errorf("playbook %q has no step %d", playbook, stepIndex)
	}
	return e.run(ctx, p, a, stepIndex+1), nil
}

// run runs the playbook's steps from start.
func (e *Engine) run(ctx context.Context, p *Playbook, a *alert.Alert, start int) Outcome {
	out := Outcome{Playbook: p.Name, DryRun: p.DryRun}
	for i := start; i < len(p.Steps); i++ {
		s := p.Steps[i]
		targets := a.OfType(s.Target)
		gate := s.RequiresApproval && !p.DryRun
		if len(targets) == 0 {
			out.Steps = append(out.Steps, StepOutcome{Step: s.Name, Action: s.Action,
				StepResult: StepResult{Status: "skipped", Message: "the alert has no " + s.Target + " entity"}})
			continue
		}
		failed := false
		for _, t := range targets {
			req := StepRequest{Alert: a, Playbook: p.Name, Step: s, StepIndex: i, Target: t, DryRun: p.DryRun}
			var res StepResult
			var err error
			if gate {
				res, err = e.Exec.Hold(ctx, req)
			} else {
				res, err = e.Exec.Run(ctx, req)
			}
			so := StepOutcome{Step: s.Name, Action: s.Action, Target: t, StepResult: res}
			if err != nil {
				so.Error = err.Error()
				if so.Status == "" {
					so.Status = "failed"
				}
				failed = true
			}
			out.Steps = append(out.Steps, so)
		}
		if gate {
			out.Waiting = true
			return out
		}
		if failed && s.OnFailure == "stop" {
			out.Stopped = true
			return out
		}
	}
	return out
}
