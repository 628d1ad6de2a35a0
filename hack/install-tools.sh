#!/usr/bin/env bash
# Installs everything kdfir's tests and demo need, into $KDFIR_TOOLS_DIR
# (default ~/.cache/kdfir/tools). Safe to run again: each step is skipped
# when its versioned output is already there.
set -euo pipefail

KUBE_VERSION=v1.32.4
KWOK_VERSION=v0.7.0
STATICCHECK_VERSION=v0.8.2
AZURITE_VERSION=3.37.0

root=$(cd "$(dirname "$0")/.." && pwd)
tools=${KDFIR_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kdfir/tools}
# Bump BUILD when the way the binaries are built changes, to rebuild them.
BUILD=2
mkdir -p "$tools/bin" "$tools/k8s-$KUBE_VERSION"
if [ "$(cat "$tools/k8s-$KUBE_VERSION/.build" 2>/dev/null)" != "$BUILD" ]; then
	rm -f "$tools/k8s-$KUBE_VERSION"/kube-*
	echo "$BUILD" >"$tools/k8s-$KUBE_VERSION/.build"
fi

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }
ok() { printf '    ok: %s\n' "$*"; }

# Prints a running count of compiled packages, so a long build shows life.
progress() {
	local n=0
	while IFS= read -r _; do
		n=$((n + 1))
		if [ -t 1 ]; then printf '\r    %d packages compiled' "$n"; elif [ $((n % 100)) -eq 0 ]; then printf '    %d packages compiled\n' "$n"; fi
	done
	[ -t 1 ] && printf '\n'
	return 0
}

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

step "etcd (Debian package etcd-server)"
if command -v etcd >/dev/null 2>&1; then
	ok "$(etcd --version | head -n1)"
else
	sudo_if_needed apt-get update -qq
	sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
	# The package starts a system etcd on the default ports; the tests run
	# their own, so stop it if it is running.
	sudo_if_needed systemctl disable --now etcd >/dev/null 2>&1 || true
	ok "$(etcd --version | head -n1)"
fi

step "chromium (Debian package, for the console's browser tests)"
if command -v chromium >/dev/null 2>&1; then
	ok "$(chromium --version 2>/dev/null | head -n1)"
else
	sudo_if_needed apt-get update -qq
	sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
	ok "$(chromium --version 2>/dev/null | head -n1)"
fi

step "firefox-esr, webkit2gtk-driver and xvfb (Debian packages, for the console's Firefox and WebKit tests)"
missing=()
command -v firefox-esr >/dev/null 2>&1 || missing+=(firefox-esr)
command -v WebKitWebDriver >/dev/null 2>&1 || missing+=(webkit2gtk-driver)
# WebKitGTK has no headless mode: its tests run it on a private Xvfb.
command -v Xvfb >/dev/null 2>&1 || missing+=(xvfb)
if [ ${#missing[@]} -gt 0 ]; then
	sudo_if_needed apt-get update -qq
	sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
ok "$(firefox-esr --version 2>/dev/null | head -n1), WebKitWebDriver $(dpkg-query -W -f '${Version}' webkit2gtk-driver 2>/dev/null)"

for bin in kube-apiserver kube-controller-manager kube-scheduler; do
	out="$tools/k8s-$KUBE_VERSION/$bin"
	step "$bin $KUBE_VERSION"
	if [ -x "$out" ]; then
		ok "cached at $out"
		continue
	fi
	echo "    building from the Go module proxy (the first build takes several minutes on 2 cores)"
	ver="-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=32 -X k8s.io/component-base/version.gitTreeState=clean"
	(cd "$root/hack/tools" && go build -v -ldflags "$ver" -o "$out.tmp" "k8s.io/kubernetes/cmd/$bin" 2>&1 | progress)
	[ -x "$out.tmp" ] || { echo "build of $bin failed" >&2; exit 1; }
	mv "$out.tmp" "$out"
	ok "built $out"
done

step "kwok $KWOK_VERSION"
if [ -x "$tools/bin/kwok" ] && [ "$(cat "$tools/bin/.kwok-version" 2>/dev/null)" = "$KWOK_VERSION" ]; then
	ok "cached"
else
	GOBIN="$tools/bin" go install -v "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" 2>&1 | progress
	echo "$KWOK_VERSION" >"$tools/bin/.kwok-version"
	ok "built $tools/bin/kwok"
fi

step "staticcheck $STATICCHECK_VERSION"
if [ -x "$tools/bin/staticcheck" ] && [ "$(cat "$tools/bin/.staticcheck-version" 2>/dev/null)" = "$STATICCHECK_VERSION" ]; then
	ok "cached"
else
	GOBIN="$tools/bin" go install -v "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" 2>&1 | progress
	echo "$STATICCHECK_VERSION" >"$tools/bin/.staticcheck-version"
	ok "built $tools/bin/staticcheck"
fi

step "azurite $AZURITE_VERSION (npm)"
if [ -x "$tools/azurite/node_modules/.bin/azurite-blob" ] && grep -q "\"version\": \"$AZURITE_VERSION\"" "$tools/azurite/node_modules/azurite/package.json" 2>/dev/null; then
	ok "cached"
else
	command -v npm >/dev/null 2>&1 || { sudo_if_needed apt-get update -qq; sudo_if_needed apt-get install -y -qq nodejs npm >/dev/null; }
	mkdir -p "$tools/azurite"
	npm install --prefix "$tools/azurite" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >/dev/null
	ok "installed $tools/azurite"
fi

command -v jq >/dev/null 2>&1 || {
	step "jq (demo and benchmark baseline)"
	sudo_if_needed apt-get update -qq
	sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null
}

step "tools ready in $tools"
