#!/usr/bin/env bash
# make demo: kdfir's main job, end to end, on a local cluster.
#
# A local control plane sends its audit log to kdfir serve (built-in rule
# pack, one playbook). A short scripted intrusion follows; kdfir detects it
# as it happens, collects evidence and isolates the pod; the evidence is
# verified and the isolation reverted. Everything lives in a temporary
# directory and is removed at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kdfir="$root/bin/kdfir"
work=$(mktemp -d)
data="$work/data"
kc="$work/kubeconfig"
pids=()

cleanup() {
	status=$?
	if [ "$status" -ne 0 ]; then
		echo "--- the demo failed; kdfir serve's log:"; tail -n 30 "$work/serve.log" 2>/dev/null || true
		echo "--- the cluster's log:"; tail -n 10 "$work/devcluster.log" 2>/dev/null || true
	fi
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1;36m### %s\033[0m\n' "$*"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }
k() { kubectl --kubeconfig "$kc" "$@"; }
kd() { "$kdfir" --data-dir "$data" --clusters-file "$work/clusters.yaml" --cluster demo "$@"; }

# A free loopback port for kdfir serve.
port=18443
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done

say "1/6  Setting up: API keys, a playbook, kdfir serve's config"
mkdir -p "$data" "$work/playbooks" "$work/evidence" "$work/tls"
# The audit key's action scopes bound what alerts from its events may do.
"$kdfir" keys create apiserver --actions audit,collect-pod,isolate-pod -o json >"$work/apiserver.json"
"$kdfir" keys create responder --actions '*' -o json >"$work/responder.json"
webhook_key=$(jq -r .key "$work/apiserver.json")
cat >"$work/playbooks/exec.yaml" <<'EOF'
name: exec-collect-then-isolate
description: Someone ran a command in a pod. Preserve the evidence, then quarantine the pod.
match: {source: [kdfir], rule: [k8s-exec-into-pod], entities: [pod]}
steps:
- {name: evidence, action: collect-pod, params: {destination: default}, on_failure: continue}
- {name: quarantine, action: isolate-pod}
EOF
printf 'clusters:\n- {name: demo, kubeconfig: %s}\n' "$kc" >"$work/clusters.yaml"
cat >"$work/kdfir.yaml" <<EOF
listen: 127.0.0.1:$port
tls: {cert: $work/tls/tls.crt, key: $work/tls/tls.key}
apiKeys:
- {name: apiserver, hash: "$(jq -r .hash "$work/apiserver.json")", scopes: [audit, collect-pod, isolate-pod], cluster: demo}
- {name: responder, hash: "$(jq -r .hash "$work/responder.json")", scopes: ['*']}
clusters:
- {name: demo, kubeconfig: $kc}
playbooks: [$work/playbooks]
evidence: {default: $work/evidence}
EOF
run "$kdfir" config check "$work/kdfir.yaml"

say "2/6  Starting a local Kubernetes control plane whose audit webhook is kdfir serve"
go build -o "$work/devcluster" "$root/hack/devcluster"
"$work/devcluster" -kubeconfig "$kc" -pod shop/web-7f9 \
	-audit-webhook "https://127.0.0.1:$port/v1/audit" -audit-webhook-token "$webhook_key" -audit-webhook-cert-dir "$work/tls" >"$work/devcluster.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 240); do
	grep -q '^ready' "$work/devcluster.log" && break
	kill -0 "${pids[0]}" 2>/dev/null || { cat "$work/devcluster.log"; exit 1; }
	sleep 0.5
done
grep -q '^ready' "$work/devcluster.log" || { echo "the cluster did not start"; cat "$work/devcluster.log"; exit 1; }
"$kdfir" --data-dir "$data" --log-level "${KDFIR_DEMO_LOG_LEVEL:-warn}" serve --config "$work/kdfir.yaml" >"$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
	grep -q '^listening' "$work/serve.log" && break
	sleep 0.1
done
grep -q '^listening' "$work/serve.log" || { cat "$work/serve.log"; exit 1; }
run k get nodes,pods -A -o wide
echo "kdfir serve: https://127.0.0.1:$port, $(kd rules list -o json | jq length) detection rules, audit webhook from the API server"

say "3/6  The intrusion: exec into a pod, a privileged pod, a cluster-admin binding, a token request"
run k exec -n shop web-7f9 -- cat /root/.bash_history
cat <<'EOF' | k apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: ubuntu-priv, namespace: shop}
spec:
  containers:
  - {name: shell, image: ubuntu:24.04, securityContext: {privileged: true}}
EOF
echo "pod/ubuntu-priv created (privileged)"
run k create clusterrolebinding backdoor --clusterrole cluster-admin --user mallory
run k create token default -n shop --duration 10m >/dev/null && echo "serviceaccount token minted for shop/default"

say "4/6  Alerts, as kdfir raised them (the audit webhook batches within 200 ms)"
for _ in $(seq 1 50); do
	[ "$(kd alerts list -o json | jq length)" -ge 4 ] && [ "$(kd actions list -o json 2>/dev/null | jq '[.[] | select(.action=="isolate-pod")] | length')" -ge 1 ] && break
	sleep 0.2
done
run kd alerts list
first=$(kd alerts list -o json | jq -r '[.[] | select(.rule=="k8s-exec-into-pod")][0].id')
run kd alerts show "$first"

say "5/6  What kdfir did: evidence collected, then the pod quarantined"
run kd actions list
iso=$(kd actions list -o json | jq -r '[.[] | select(.action=="isolate-pod")][0].id')
run k get pod web-7f9 -n shop --show-labels
run k get networkpolicy -n shop
manifest=$(find "$work/evidence" -name manifest.json | head -n 1)
evidence_dir=$(dirname "$manifest")
echo "evidence: $evidence_dir"
ls "$evidence_dir" | head -n 20
run kd evidence verify "$evidence_dir"

say "6/6  Reverting the isolation restores the pod exactly"
run kd revert "$iso"
run k get pod web-7f9 -n shop --show-labels
run k get networkpolicy -n shop
run kd revert "$iso"

say "The console"
echo "console: https://127.0.0.1:$port/  (self-signed certificate)"
echo "sign in with the demo's key: $(jq -r .key "$work/responder.json")"
if [ "${KEEP:-}" = 1 ]; then
	echo "KEEP=1: kdfir serve and the cluster keep running; press Ctrl-C to stop and clean up"
	while kill -0 "${pids[0]}" 2>/dev/null; do sleep 1; done
fi

say "Done: stopping kdfir serve and the cluster, removing $work"
