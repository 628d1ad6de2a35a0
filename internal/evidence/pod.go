package evidence

import (
	"context"
	"encoding/json"
	"io"
	"net/url"
	"sort"

	corev1 "k8s.io/api/core/v1"
)

// containerInfo is one container of a pod, with its status.
type containerInfo struct {
	name string
	kind string // init, container or ephemeral
	// image is the reference in the spec.
	image     string
	status    *corev1.ContainerStatus
	runAsUser *int64
}

// containersOf lists a pod's init, regular and ephemeral containers.
func containersOf(pod *corev1.Pod) []containerInfo {
	statuses := map[string]*corev1.ContainerStatus{}
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses, pod.Status.EphemeralContainerStatuses} {
		for i := range list {
			statuses[list[i].Name] = &list[i]
		}
	}
	var podUser *int64
	if pod.Spec.SecurityContext != nil {
		podUser = pod.Spec.SecurityContext.RunAsUser
	}
	var out []containerInfo
	add := func(kind, name, image string, sc *corev1.SecurityContext) {
		ci := containerInfo{name: name, kind: kind, image: image, status: statuses[name], runAsUser: podUser}
		if sc != nil && sc.RunAsUser != nil {
			ci.runAsUser = sc.RunAsUser
		}
		out = append(out, ci)
	}
	for _, c := range pod.Spec.InitContainers {
		add("init", c.Name, c.Image, c.SecurityContext)
	}
	for _, c := range pod.Spec.Containers {
		add("container", c.Name, c.Image, c.SecurityContext)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		add("ephemeral", c.Name, c.Image, c.SecurityContext)
	}
	return out
}

// started tells whether the container ever ran, so that it has logs.
func (ci containerInfo) started() bool {
	s := ci.status
	if s == nil {
		return false
	}
	return s.State.Running != nil || s.State.Terminated != nil || s.RestartCount > 0 || s.LastTerminationState.Terminated != nil
}

func (ci containerInfo) running() bool { return ci.status != nil && ci.status.State.Running != nil }

// pod collects one pod under dir (pods/<pod>/, or pods/<namespace>/<pod>/
// where pods of several namespaces share the collection): its manifest,
// events, a describe report, image references, logs, shell histories and
// the objects around it. The slow parts run as bounded tasks.
func (r *run) pod(ctx context.Context, dir string, pod *corev1.Pod, raw []byte, source string) {
	r.writeYAML(ctx, dir+"pod.yaml", source, resPods, raw)

	params := url.Values{"fieldSelector": {"involvedObject.uid=" + string(pod.UID)}}
	var events corev1.EventList
	body, evSource, err := r.c.apiGet(ctx, resEvents.path(pod.Namespace, ""), params)
	if err != nil {
		r.failed(dir+"events.yaml", evSource, err)
	} else {
		r.writeYAML(ctx, dir+"events.yaml", evSource, resource{}, body)
		_ = json.Unmarshal(body, &events)
	}
	r.bytes(ctx, dir+"describe.txt", "kdfir: describe, from "+source+" and "+evSource, describePod(pod, events.Items))

	containers := containersOf(pod)
	images := imageRefs(containers)
	if r.images {
		for i := range images {
			if images[i].Reference != "" {
				images[i].Export = imagePath(images[i].Digest)
			}
		}
	}
	if b, err := json.MarshalIndent(images, "", "  "); err == nil {
		r.bytes(ctx, dir+"images.json", "kdfir: from "+source+" (spec image, status imageID)", append(b, '\n'))
	}

	for _, ci := range containers {
		if !ci.started() {
			continue
		}
		r.spawn(func(ctx context.Context) { r.logs(ctx, pod, dir, ci.name, false) })
		if ci.status.RestartCount > 0 {
			r.spawn(func(ctx context.Context) { r.logs(ctx, pod, dir, ci.name, true) })
		}
	}
	for _, ci := range containers {
		if ci.running() {
			r.spawn(func(ctx context.Context) { r.history(ctx, pod, dir, ci) })
		}
	}
	r.spawn(func(ctx context.Context) { r.podObjects(ctx, pod) })
	if r.images {
		r.exportImages(pod, dir, images)
	}
}

// logs streams one container's log, with timestamps.
func (r *run) logs(ctx context.Context, pod *corev1.Pod, dir, container string, previous bool) {
	opts := &corev1.PodLogOptions{Container: container, Timestamps: true, Previous: previous}
	path := dir + "logs/" + pathSegment(container) + ".log"
	if previous {
		path = dir + "logs/" + pathSegment(container) + ".previous.log"
	}
	req := r.c.stream.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, opts)
	r.collect(ctx, item{path: path, source: "GET " + req.URL().RequestURI(), container: container,
		open: func(ctx context.Context) (io.ReadCloser, error) {
			return r.c.stream.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, opts).Stream(ctx)
		}})
}

// imageRef is one container's image, as images.json records it.
type imageRef struct {
	Container string `json:"container"`
	Kind      string `json:"kind"`
	// Image is the reference in the pod spec.
	Image string `json:"image"`
	// ImageID is status.containerStatuses[].imageID, what the runtime
	// resolved the image to.
	ImageID string `json:"imageID"`
	// Digest is the manifest digest, and Reference the pullable
	// repository@digest, when they are known.
	Digest    string `json:"digest,omitempty"`
	Reference string `json:"reference,omitempty"`
	// Export is the OCI tarball's path in the collection, with --images.
	Export string `json:"export,omitempty"`
}

func imageRefs(containers []containerInfo) []imageRef {
	out := []imageRef{}
	for _, ci := range containers {
		ref := imageRef{Container: ci.name, Kind: ci.kind, Image: ci.image}
		if ci.status != nil {
			ref.ImageID = ci.status.ImageID
		}
		ref.Reference, ref.Digest = resolveDigest(ci.image, ref.ImageID)
		out = append(out, ref)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Container < out[j].Container })
	return out
}
