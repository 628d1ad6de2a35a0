package evidence

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// describePod writes what `kubectl describe pod` shows a responder:
// status, conditions, containers with their states and restarts, node,
// IPs, volumes, and the events that involve the pod.
func describePod(pod *corev1.Pod, events []corev1.Event) []byte {
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	field := func(indent int, name string, value any) {
		fmt.Fprintf(w, "%s%s:\t%v\n", strings.Repeat("  ", indent), name, value)
	}
	field(0, "Name", pod.Name)
	field(0, "Namespace", pod.Namespace)
	field(0, "UID", pod.UID)
	field(0, "Priority", deref(pod.Spec.Priority))
	field(0, "Service Account", orNone(pod.Spec.ServiceAccountName))
	field(0, "Node", orNone(pod.Spec.NodeName))
	field(0, "Start Time", timeOrNone(pod.Status.StartTime))
	field(0, "Labels", mapText(pod.Labels))
	field(0, "Annotations", mapText(pod.Annotations))
	if pod.DeletionTimestamp != nil {
		field(0, "Terminating Since", pod.DeletionTimestamp.UTC().Format(time.RFC3339))
	}
	field(0, "Status", pod.Status.Phase)
	if pod.Status.Reason != "" {
		field(0, "Reason", pod.Status.Reason)
	}
	if pod.Status.Message != "" {
		field(0, "Message", pod.Status.Message)
	}
	field(0, "IP", orNone(pod.Status.PodIP))
	var ips []string
	for _, ip := range pod.Status.PodIPs {
		ips = append(ips, ip.IP)
	}
	field(0, "IPs", orNone(strings.Join(ips, ", ")))
	field(0, "Host IP", orNone(pod.Status.HostIP))
	field(0, "Host Network", pod.Spec.HostNetwork)
	field(0, "QoS Class", orNone(string(pod.Status.QOSClass)))
	var owners []string
	for _, o := range pod.OwnerReferences {
		s := o.Kind + "/" + o.Name
		if o.Controller != nil && *o.Controller {
			s += " (controller)"
		}
		owners = append(owners, s)
	}
	field(0, "Controlled By", orNone(strings.Join(owners, ", ")))
	if pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.RunAsUser != nil {
		field(0, "Run As User", *pod.Spec.SecurityContext.RunAsUser)
	}

	containers := containersOf(pod)
	for _, section := range []struct{ title, kind string }{{"Init Containers", "init"}, {"Containers", "container"}, {"Ephemeral Containers", "ephemeral"}} {
		var list []containerInfo
		for _, ci := range containers {
			if ci.kind == section.kind {
				list = append(list, ci)
			}
		}
		if len(list) == 0 {
			continue
		}
		fmt.Fprintf(w, "%s:\n", section.title)
		for _, ci := range list {
			fmt.Fprintf(w, "  %s:\n", ci.name)
			field(2, "Image", ci.image)
			if ci.runAsUser != nil {
				field(2, "Run As User", *ci.runAsUser)
			}
			s := ci.status
			if s == nil {
				field(2, "State", "unknown (no status)")
				continue
			}
			field(2, "Image ID", orNone(s.ImageID))
			field(2, "Container ID", orNone(s.ContainerID))
			describeState(field, "State", s.State)
			if s.LastTerminationState != (corev1.ContainerState{}) {
				describeState(field, "Last State", s.LastTerminationState)
			}
			field(2, "Ready", s.Ready)
			field(2, "Restart Count", s.RestartCount)
		}
	}

	fmt.Fprintln(w, "Conditions:")
	fmt.Fprintln(w, "  Type\tStatus\tLast Transition\tReason")
	for _, c := range pod.Status.Conditions {
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", c.Type, c.Status, c.LastTransitionTime.UTC().Format(time.RFC3339), orNone(c.Reason))
	}
	fmt.Fprintln(w, "Volumes:")
	for _, v := range pod.Spec.Volumes {
		fmt.Fprintf(w, "  %s:\t%s\n", v.Name, volumeSource(v.VolumeSource))
	}
	w.Flush()
	describeEvents(&b, events)
	return b.Bytes()
}

func describeState(field func(int, string, any), name string, s corev1.ContainerState) {
	switch {
	case s.Running != nil:
		field(2, name, "Running")
		field(3, "Started", s.Running.StartedAt.UTC().Format(time.RFC3339))
	case s.Terminated != nil:
		field(2, name, "Terminated")
		field(3, "Reason", orNone(s.Terminated.Reason))
		field(3, "Exit Code", s.Terminated.ExitCode)
		field(3, "Started", s.Terminated.StartedAt.UTC().Format(time.RFC3339))
		field(3, "Finished", s.Terminated.FinishedAt.UTC().Format(time.RFC3339))
		if s.Terminated.Message != "" {
			field(3, "Message", s.Terminated.Message)
		}
	case s.Waiting != nil:
		field(2, name, "Waiting")
		field(3, "Reason", orNone(s.Waiting.Reason))
	default:
		field(2, name, "unknown")
	}
}

// volumeSource names a volume's type and what it points at.
func volumeSource(v corev1.VolumeSource) string {
	switch {
	case v.HostPath != nil:
		return "HostPath " + v.HostPath.Path
	case v.EmptyDir != nil:
		return "EmptyDir"
	case v.ConfigMap != nil:
		return "ConfigMap " + v.ConfigMap.Name
	case v.Secret != nil:
		return "Secret " + v.Secret.SecretName
	case v.PersistentVolumeClaim != nil:
		return "PersistentVolumeClaim " + v.PersistentVolumeClaim.ClaimName
	case v.Projected != nil:
		var parts []string
		for _, s := range v.Projected.Sources {
			switch {
			case s.ServiceAccountToken != nil:
				parts = append(parts, "ServiceAccountToken")
			case s.ConfigMap != nil:
				parts = append(parts, "ConfigMap "+s.ConfigMap.Name)
			case s.Secret != nil:
				parts = append(parts, "Secret "+s.Secret.Name)
			case s.DownwardAPI != nil:
				parts = append(parts, "DownwardAPI")
			}
		}
		return "Projected (" + strings.Join(parts, ", ") + ")"
	case v.DownwardAPI != nil:
		return "DownwardAPI"
	case v.CSI != nil:
		return "CSI " + v.CSI.Driver
	case v.NFS != nil:
		return "NFS " + v.NFS.Server + ":" + v.NFS.Path
	case v.Ephemeral != nil:
		return "Ephemeral"
	}
	return "other"
}

func describeEvents(w io.Writer, events []corev1.Event) {
	if len(events) == 0 {
		fmt.Fprintln(w, "Events:  <none>")
		return
	}
	sort.SliceStable(events, func(i, j int) bool { return eventTime(events[i]).Before(eventTime(events[j])) })
	fmt.Fprintln(w, "Events:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  Time\tType\tReason\tCount\tFrom\tMessage")
	for _, e := range events {
		from := e.Source.Component
		if from == "" {
			from = e.ReportingController
		}
		count := max(e.Count, 1)
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%s\n", eventTime(e).UTC().Format(time.RFC3339), e.Type, e.Reason, count, orNone(from), strings.TrimSpace(e.Message))
	}
	tw.Flush()
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.FirstTimestamp.IsZero():
		return e.FirstTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

func mapText(m map[string]string) string {
	if len(m) == 0 {
		return "<none>"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return strings.Join(keys, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func timeOrNone(t *metav1.Time) string {
	if t == nil {
		return "<none>"
	}
	return t.UTC().Format(time.RFC3339)
}

func deref(p *int32) any {
	if p == nil {
		return "<none>"
	}
	return *p
}
