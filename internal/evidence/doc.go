// Package evidence collects forensic evidence from a Kubernetes cluster,
// streams it to a sink (a local directory or Azure Blob Storage), and
// writes a manifest that lists every artifact with its SHA-256, signed with
// ed25519, so that anyone holding the public key can verify the set.
//
// # Organization
//
//   - sink.go: the Sink interface and the local-directory sink.
//   - blob.go: the Azure Blob sink (SAS URL, any endpoint, or
//     DefaultAzureCredential) and its error handling.
//   - dest.go: parsing a DEST string into a Sink; SinkFromSAS and
//     SinkFromURL for callers that hold the Sentinel playbook's fields.
//   - redact.go: removing SAS signatures from anything printed.
//   - manifest.go: the manifest format.
//   - sign.go: ed25519 keys, signatures and fingerprints.
//   - verify.go: checking a collection against its manifest and signature.
//   - collect.go: the Collector and the pod, namespace and node
//     collections; objects.go, logs.go, history.go, images.go and
//     describe.go produce the artifacts.
//   - retry.go: backoff for transient errors.
//
// A collection goes under its own prefix in the sink,
// <cluster>/<namespace>/<pod>/<UTC timestamp>-<action id>/ for a pod, and
// everything in it is streamed: no artifact is held in memory whole.
package evidence
