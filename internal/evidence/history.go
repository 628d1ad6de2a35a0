package evidence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// historyFiles are read from the home directory of the container's user;
// /root/.bash_history is read as well, whoever the user is.
var historyFiles = []string{".bash_history", ".ash_history", ".sh_history", ".zsh_history"}

// shellUser is how kdfir found a container's user and home directory, as
// user.json records it.
type shellUser struct {
	Container string `json:"container"`
	// RunAsUser is the securityContext's runAsUser (container, else pod).
	RunAsUser *int64 `json:"runAsUser,omitempty"`
	// ImageUser is the image config's User, read from the registry with
	// --images when neither runAsUser nor `id -un` tells the user.
	ImageUser string `json:"imageUser,omitempty"`
	// User is what `id -un` printed in the container.
	User string `json:"user,omitempty"`
	UID  string `json:"uid,omitempty"`
	Home string `json:"home,omitempty"`
	// HomeSource is "getent passwd", "/etc/passwd" or "default for root".
	HomeSource string `json:"homeSource,omitempty"`
	// Found are the history files collected; Absent those that do not
	// exist in the container.
	Found  []string `json:"found"`
	Absent []string `json:"absent"`
	Errors []string `json:"errors,omitempty"`
}

// history collects the shell history of a running container's user: find
// the user (runAsUser, the image's user, `id -un`), then the home
// directory (`getent passwd`, else /etc/passwd), then cat each history
// file. Everything runs as argv through exec, with no shell.
func (r *run) history(ctx context.Context, pod *corev1.Pod, dir string, ci containerInfo) {
	base := dir + "history/" + pathSegment(ci.name)
	ns, name := pod.Namespace, pod.Name
	u := shellUser{Container: ci.name, RunAsUser: ci.runAsUser, Found: []string{}, Absent: []string{}}
	if ci.runAsUser != nil {
		u.UID = strconv.FormatInt(*ci.runAsUser, 10)
	}

	idArgv := []string{"id", "-un"}
	out, err := r.c.execOutput(ctx, ns, name, ci.name, idArgv...)
	var ee *ExecError
	switch {
	case err == nil:
		u.User = strings.TrimSpace(out)
	case errors.As(err, &ee):
		u.Errors = append(u.Errors, err.Error())
	default:
		// No exec at all (forbidden, container gone): one failed item,
		// not one per history file.
		r.record(Artifact{Path: base, Source: execSource(ns, name, ci.name, idArgv), Exec: idArgv, Container: ci.name},
			fmt.Errorf("shell history: %w", err))
		return
	}
	if u.User == "" && ci.runAsUser == nil && r.images {
		if ref, _ := resolveDigest(ci.image, statusImageID(ci)); ref != "" {
			if iu, err := r.c.imageUser(ctx, ref, r.platform(ctx, pod.Spec.NodeName)); err == nil {
				u.ImageUser = iu
			} else {
				u.Errors = append(u.Errors, err.Error())
			}
		}
	}
	r.findHome(ctx, pod, ci.name, &u)

	var candidates []string
	if u.Home != "" {
		for _, f := range historyFiles {
			candidates = append(candidates, path.Join(u.Home, f))
		}
	}
	if u.Home != "/root" {
		candidates = append(candidates, "/root/.bash_history")
	}
	var failures []Artifact
	for _, file := range candidates {
		argv := []string{"cat", file}
		a, err := r.stream(ctx, item{
			path: base + "/" + strings.TrimPrefix(path.Clean(file), "/"), source: execSource(ns, name, ci.name, argv),
			container: ci.name, exec: argv,
			open: func(ctx context.Context) (io.ReadCloser, error) {
				return goPipe(ctx, func(ctx context.Context, w io.Writer) error {
					return r.c.exec(ctx, ns, name, ci.name, argv, w)
				}), nil
			},
		})
		switch {
		case errors.Is(err, errSinkFailed):
			return
		case err == nil:
			u.Found = append(u.Found, file)
			r.record(a, nil)
		case notFound(err):
			u.Absent = append(u.Absent, file)
		default:
			a.Error = err.Error()
			failures = append(failures, a)
		}
	}
	switch {
	case len(u.Found) > 0:
		for _, a := range failures {
			r.record(a, errors.New(a.Error))
		}
	case len(failures) > 0:
		r.record(Artifact{Path: base, Source: failures[0].Source, Exec: failures[0].Exec, Container: ci.name},
			fmt.Errorf("no shell history collected: %s", failures[0].Error))
	default:
		r.record(Artifact{Path: base, Source: "exec " + ns + "/" + name + " -c " + ci.name + ": cat", Container: ci.name},
			fmt.Errorf("no shell history: none of %s exists", strings.Join(candidates, ", ")))
	}
	if b, err := json.MarshalIndent(u, "", "  "); err == nil {
		r.bytes(ctx, base+"/user.json", "kdfir: the user and home directory found by exec of id, getent and cat", append(b, '\n'))
	}
}

func statusImageID(ci containerInfo) string {
	if ci.status == nil {
		return ""
	}
	return ci.status.ImageID
}

// findHome looks the user up in the container's passwd database, by name,
// else by uid, else by the image's user.
func (r *run) findHome(ctx context.Context, pod *corev1.Pod, container string, u *shellUser) {
	key := u.User
	if key == "" {
		key = u.UID
	}
	if key == "" {
		key, _, _ = strings.Cut(u.ImageUser, ":")
	}
	if key != "" {
		if out, err := r.c.execOutput(ctx, pod.Namespace, pod.Name, container, "getent", "passwd", key); err == nil {
			if e, ok := findPasswd(out, key); ok {
				u.setFrom(e, "getent passwd")
				return
			}
		} else {
			u.Errors = append(u.Errors, err.Error())
		}
		if out, err := r.c.execOutput(ctx, pod.Namespace, pod.Name, container, "cat", "/etc/passwd"); err == nil {
			if e, ok := findPasswd(out, key); ok {
				u.setFrom(e, "/etc/passwd")
				return
			}
		} else {
			u.Errors = append(u.Errors, err.Error())
		}
	}
	if u.User == "root" || u.UID == "0" || (u.User == "" && u.UID == "" && u.ImageUser == "") {
		// An image without a USER runs as root.
		u.Home, u.HomeSource = "/root", "default for root"
	}
}

type passwdEntry struct{ name, uid, home string }

func (u *shellUser) setFrom(e passwdEntry, source string) {
	if u.User == "" {
		u.User = e.name
	}
	u.UID, u.Home, u.HomeSource = e.uid, path.Clean("/"+e.home), source
}

// findPasswd finds the passwd line whose name or uid is key.
func findPasswd(passwd, key string) (passwdEntry, bool) {
	for line := range strings.SplitSeq(passwd, "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) < 7 {
			continue
		}
		if f[0] == key || f[2] == key {
			return passwdEntry{name: f[0], uid: f[2], home: f[5]}, true
		}
	}
	return passwdEntry{}, false
}
