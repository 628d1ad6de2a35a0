#!/usr/bin/env bash
# make demo: bring up a local cluster, show kdfir working on it, tear it
# down again. Everything it creates lives in a temporary directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kdfir="$root/bin/kdfir"
work=$(mktemp -d)
export KDFIR_DATA_DIR="$work/data"
kc="$work/kubeconfig"
cluster_pid=""

cleanup() {
	if [ -n "$cluster_pid" ]; then kill "$cluster_pid" 2>/dev/null || true; wait "$cluster_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1;36m### %s\033[0m\n' "$*"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }

say "Starting a local Kubernetes control plane (etcd, kube-apiserver, controllers, kwok)"
go build -o "$work/devcluster" "$root/hack/devcluster"
"$work/devcluster" -kubeconfig "$kc" -pod shop/web-7f9 >"$work/devcluster.log" 2>&1 &
cluster_pid=$!
for _ in $(seq 1 180); do
	grep -q '^ready' "$work/devcluster.log" && break
	kill -0 "$cluster_pid" 2>/dev/null || { cat "$work/devcluster.log"; exit 1; }
	sleep 0.5
done
grep '^ready' "$work/devcluster.log" || { echo "cluster did not start"; cat "$work/devcluster.log"; exit 1; }

say "kdfir sees the cluster"
run "$kdfir" version
run "$kdfir" --kubeconfig "$kc" cluster info
run kubectl --kubeconfig "$kc" get nodes,pods -A -o wide

say "Done: stopping the cluster"
