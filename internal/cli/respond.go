package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kdfir/kdfir/internal/config"
	"github.com/kdfir/kdfir/internal/respond"
)

// actionFlags are the flags every response action takes.
type actionFlags struct {
	reason string
	dryRun bool
}

func (f *actionFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.reason, "reason", "", "why: an incident or ticket id, recorded in the journal")
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "show what would change, checked by the API server (dryRun=All); change and journal nothing")
}

func newIsolateCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "isolate",
		Short: "Isolate a pod or a namespace with labels and deny-all NetworkPolicies (undo: unisolate)",
		Args:  cobra.NoArgs,
	}
	var pod respond.IsolatePodParams
	var podFlags actionFlags
	podCmd := describe("isolate-pod", &cobra.Command{
		Use: "pod NAMESPACE/NAME",
		Long: "Labels the pod (default kdfir.io/quarantine=true) and ensures a NetworkPolicy in its namespace that selects\n" +
			"exactly the quarantined pods and denies all ingress and egress. A label the pod already had is recorded and\n" +
			"restored on release. With --detach, also removes the labels by which its Services and its controller select it,\n" +
			"so it leaves the Service endpoints and its controller replaces it while it stays for forensics.",
		Example: "\n  kdfir isolate pod shop/web-7f9 --label status=quarantine --detach",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.runAction(cmd.Context(), respond.ExecPolicy{},
				respond.Request{Action: "isolate-pod", Target: args[0], Params: pod, Reason: podFlags.reason, DryRun: podFlags.dryRun})
		},
	})
	podCmd.Flags().StringVar(&pod.Label, "label", respond.DefaultQuarantine, "the quarantine label, KEY=VALUE")
	podCmd.Flags().BoolVar(&pod.Detach, "detach", false, "also remove the labels its Services and its ReplicaSet, StatefulSet, DaemonSet or Job select it by")
	podFlags.add(podCmd)

	var ns respond.IsolateNamespaceParams
	var nsFlags actionFlags
	nsCmd := describe("isolate-namespace", &cobra.Command{
		Use:     "namespace NAME",
		Aliases: []string{"ns"},
		Long: "Labels the namespace and adds a deny-all NetworkPolicy whose podSelector is empty ({}), so it covers\n" +
			"every pod in the namespace, including pods created later.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.runAction(cmd.Context(), respond.ExecPolicy{},
				respond.Request{Action: "isolate-namespace", Target: args[0], Params: ns, Reason: nsFlags.reason, DryRun: nsFlags.dryRun})
		},
	})
	nsCmd.Flags().StringVar(&ns.Label, "label", respond.DefaultQuarantine, "the label put on the namespace, KEY=VALUE")
	nsFlags.add(nsCmd)
	cmd.AddCommand(podCmd, nsCmd)
	return cmd
}

func newUnisolateCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "unisolate",
		Short: "Release a pod or a namespace: revert exactly what isolate added",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(
		releaseCmd(g, "pod NAMESPACE/NAME", "Release a quarantined pod (the policy goes when no quarantined pod is left)", "isolate-pod"),
		releaseCmd(g, "namespace NAME", "Release an isolated namespace", "isolate-namespace", "ns"),
	)
	return cmd
}

func newCordonCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cordon",
		Short: "Cordon a node: label it and mark it unschedulable, optionally taint and drain it (undo: uncordon)",
		Args:  cobra.NoArgs,
	}
	var p respond.CordonNodeParams
	var f actionFlags
	node := describe("cordon-node", &cobra.Command{
		Use: "node NAME",
		Long: "Labels the node kdfir.io/quarantine=true and sets spec.unschedulable. --taint adds the taint\n" +
			"kdfir.io/quarantine:NoSchedule. --drain evicts every pod through the Eviction API, so PodDisruptionBudgets\n" +
			"are honoured (a blocked eviction is reported, never forced), except DaemonSet pods, mirror pods and pods that\n" +
			"are themselves quarantined.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.runAction(cmd.Context(), respond.ExecPolicy{},
				respond.Request{Action: "cordon-node", Target: args[0], Params: p, Reason: f.reason, DryRun: f.dryRun})
		},
	})
	node.Flags().BoolVar(&p.Taint, "taint", false, "add the taint kdfir.io/quarantine:NoSchedule")
	node.Flags().BoolVar(&p.Drain, "drain", false, "evict the node's pods through the Eviction API (except DaemonSet and quarantined pods)")
	f.add(node)
	cmd.AddCommand(node)
	return cmd
}

func newUncordonCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "uncordon",
		Short: "Uncordon a node: restore exactly its previous unschedulable value, labels and taints",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(releaseCmd(g, "node NAME", "Uncordon a node kdfir cordoned", "cordon-node"))
	return cmd
}

// releaseCmd reverts every unreverted action of one kind on a target.
func releaseCmd(g *Globals, use, short, action string, aliases ...string) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:     use,
		Aliases: aliases,
		Short:   short,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := respond.Builtin(respond.ExecPolicy{}).Validate(respond.Request{Action: action, Target: args[0]}); err != nil {
				return actionErr(nil, err)
			}
			r, cfg, done, err := g.runner(ctx, respond.ExecPolicy{})
			if err != nil {
				return err
			}
			defer done()
			res, err := r.Release(ctx, action, args[0], dryRun)
			return g.report(res, err, cfg)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what would change, checked by the API server; change and journal nothing")
	return cmd
}

func newRevertCmd(g *Globals) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "revert ID",
		Short: "Undo one journaled action exactly (a second revert changes nothing)",
		Long: "Reverts the action with that id, from what the journal recorded before the change, even if the action\n" +
			"was interrupted. Only the fields kdfir set are restored; anything someone else changed since is left alone\n" +
			"and reported. Reverting an action twice changes nothing and says so.",
		Example: "  kdfir actions list\n  kdfir revert 20261123T070000Z-1a2b3c4d",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, cfg, done, err := g.runner(ctx, respond.ExecPolicy{})
			if err != nil {
				return err
			}
			defer done()
			res, err := r.Revert(ctx, args[0], dryRun)
			return g.report(res, err, cfg)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what would change, checked by the API server; change and journal nothing")
	return cmd
}

func newExecCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exec",
		Short: "Run a command in a pod and journal its output (off unless enabled)",
		Args:  cobra.NoArgs,
	}
	var p respond.ExecPodParams
	var f actionFlags
	var allow bool
	var configPath string
	var timeout time.Duration
	pod := describe("exec-pod", &cobra.Command{
		Use: "pod NAMESPACE/NAME [-c CONTAINER] -- COMMAND [ARGS...]",
		Long: "Runs the command through pods/exec (WebSocket, falling back to SPDY) with a timeout, and journals its\n" +
			"stdout and stderr (each capped; truncation is noted) and its exit code. Exec is off unless --allow-exec is\n" +
			"given or the config file sets exec.enabled: true; the config's exec.allow lists the argv prefixes allowed.\n" +
			"kdfir exits 0 when the command ran, whatever its exit code, which it prints.",
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 || len(args) < 2 {
				return errors.New("want NAMESPACE/NAME -- COMMAND [ARGS...]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			path, optional := configPath, false
			if path == "" {
				path, optional = config.DefaultPath(), true
			}
			c, err := config.Load(path, optional)
			if err != nil {
				return err
			}
			// At the terminal, without an allowlist, the operator may run any
			// command; kdfir serve needs exec.allowAny for that.
			policy := respond.ExecPolicy{Enabled: allow || c.Exec.Enabled, Allow: c.Exec.Allow, AllowAny: len(c.Exec.Allow) == 0, MaxOutputBytes: c.Exec.MaxOutputBytes}
			p.Command = args[1:]
			p.Timeout = timeout.String()
			req := respond.Request{Action: "exec-pod", Target: args[0], Params: p, Reason: f.reason, DryRun: f.dryRun}
			if err := respond.Builtin(policy).Validate(req); err != nil {
				if errors.Is(err, respond.ErrExecDisabled) {
					return fmt.Errorf("%w: pass --allow-exec, or set exec.enabled: true in the config file (%s, or --config)", err, path)
				}
				return actionErr(nil, err)
			}
			return g.runAction(ctx, policy, req)
		},
	})
	pod.Flags().StringVarP(&p.Container, "container", "c", "", "container (default: the pod's default container, else its first)")
	pod.Flags().DurationVar(&timeout, "timeout", respond.DefaultExecTimeout, "how long the command may run")
	pod.Flags().BoolVar(&allow, "allow-exec", false, "allow exec for this run (otherwise exec.enabled in the config file must be true)")
	pod.Flags().StringVar(&configPath, "config", "", "kdfir config file (default: $KDFIR_CONFIG, then $XDG_CONFIG_HOME/kdfir/config.yaml if it exists)")
	f.add(pod)
	cmd.AddCommand(pod)
	return cmd
}

// describe fills a command's Short and Example from its action's own
// description; cmd.Example may add more examples after it.
func describe(action string, cmd *cobra.Command) *cobra.Command {
	a, ok := respond.Builtin(respond.ExecPolicy{}).Get(action)
	if !ok {
		panic("no action " + action) // the callers name built-in actions
	}
	info := a.Info()
	cmd.Short = strings.ToUpper(info.Summary[:1]) + info.Summary[1:]
	cmd.Example = "  " + info.Example + cmd.Example
	return cmd
}

// runner connects to the target cluster and opens the journal. done
// closes the journal.
func (g *Globals) runner(ctx context.Context, exec respond.ExecPolicy) (*respond.Runner, *rest.Config, func(), error) {
	c, cfg, err := g.connect()
	if err != nil {
		return nil, nil, nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("client for %s: %w", cfg.Host, err)
	}
	j, err := g.openJournal(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	r := &respond.Runner{
		Client: cs, Config: cfg, Journal: j, Actions: respond.Builtin(exec),
		Cluster: c.DisplayName(), Actor: actor(), Log: g.Log,
	}
	return r, cfg, func() { j.Close() }, nil
}

// runAction validates the request before anything else (so bad input
// touches neither the cluster nor the journal), then runs it.
func (g *Globals) runAction(ctx context.Context, exec respond.ExecPolicy, req respond.Request) error {
	if err := respond.Builtin(exec).Validate(req); err != nil {
		return actionErr(nil, err)
	}
	r, cfg, done, err := g.runner(ctx, exec)
	if err != nil {
		return err
	}
	defer done()
	res, err := r.Run(ctx, req)
	return g.report(res, err, cfg)
}

// report prints a result (also that of a failed action, which carries its
// id) and turns err into the command's error.
func (g *Globals) report(res *respond.Result, err error, cfg *rest.Config) error {
	if res != nil {
		if perr := printResult(g, res); perr != nil {
			return perr
		}
	}
	return actionErr(cfg, err)
}

// actionErr makes bad input a usage error and a connection failure one
// line naming the API server.
func actionErr(cfg *rest.Config, err error) error {
	if err == nil {
		return nil
	}
	var ie *respond.InputError
	if errors.As(err, &ie) {
		return UsageError{Err: err}
	}
	var ue *url.Error
	if cfg != nil && errors.As(err, &ue) {
		return unreachable(cfg, err)
	}
	return err
}

func printResult(g *Globals, res *respond.Result) error {
	err := render(g.Stdout, g.Output, res, func(w io.Writer) {
		fmt.Fprintln(w, "ID\tACTION\tTARGET\tSTATUS\tMESSAGE")
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", dash(res.ID), res.Action, res.Target, res.Status, res.Message)
		if len(res.Changes) > 0 {
			fmt.Fprintln(w, "\nOP\tOBJECT\tDETAIL")
			for _, c := range res.Changes {
				fmt.Fprintf(w, "%s\t%s\t%s\n", c.Op, c.Object, c.Detail)
			}
		}
		if len(res.Plan) > 0 {
			fmt.Fprintln(w, "\nPLAN (the API server's dry-run answer)\nOP\tOBJECT\tFIELD\tFROM\tTO")
			for _, it := range res.Plan {
				if len(it.Fields) == 0 {
					fmt.Fprintf(w, "%s\t%s\t-\t-\t-\n", it.Op, it.Object)
				}
				for _, f := range it.Fields {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", it.Op, it.Object, f.Field, planValue(f.From), planValue(f.To))
				}
			}
		}
		section(w, "LEFT ALONE (changed by someone else since)", res.LeftAlone)
		section(w, "WARNINGS", res.Warnings)
		if out, ok := res.Output.(respond.DrainOutput); ok {
			section(w, "NOT DRAINED", out.Skipped)
		}
	})
	if err != nil || g.Output != "table" {
		return err
	}
	if out, ok := res.Output.(respond.ExecOutput); ok {
		return printExec(g.Stdout, out)
	}
	return nil
}

// planValue prints a field's value in a plan as a hunt's cell: "-" when
// absent.
func planValue(v any) string {
	if v == nil {
		return "-"
	}
	return cell(v)
}

func section(w io.Writer, title string, lines []string) {
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s\n", title)
	for _, l := range lines {
		fmt.Fprintln(w, strings.ReplaceAll(l, "\t", " "))
	}
}

// printExec writes the command's output after the table, as it is.
func printExec(w io.Writer, out respond.ExecOutput) error {
	status := fmt.Sprintf("exit code %d", out.ExitCode)
	if out.TimedOut {
		status = "timed out"
	}
	fmt.Fprintf(w, "\n%q in container %s: %s\n", out.Command, out.Container, status)
	for _, s := range []struct {
		name, text, enc string
		n               int64
		trunc           bool
	}{{"stdout", out.Stdout, out.StdoutEncoding, out.StdoutBytes, out.StdoutTruncated}, {"stderr", out.Stderr, out.StderrEncoding, out.StderrBytes, out.StderrTruncated}} {
		if s.n == 0 {
			continue
		}
		note := ""
		if s.trunc {
			note = fmt.Sprintf(", truncated: first %d of %d bytes", out.MaxOutputBytes, s.n)
		}
		if s.enc != "" {
			note += ", " + s.enc
		}
		fmt.Fprintf(w, "--- %s%s ---\n%s", s.name, note, s.text)
		if !strings.HasSuffix(s.text, "\n") {
			fmt.Fprintln(w)
		}
	}
	return nil
}
