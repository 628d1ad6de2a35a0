package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the service's Prometheus metrics, on their own registry.
type Metrics struct {
	Registry       *prometheus.Registry
	AlertsReceived *prometheus.CounterVec
	Actions        *prometheus.CounterVec
	ActionLatency  *prometheus.HistogramVec
	HTTPRequests   *prometheus.CounterVec
	AuditEvents    prometheus.Counter
}

// NewMetrics registers the metrics.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		AlertsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kdfir_alerts_received_total", Help: "Alerts received, by source.",
		}, []string{"source"}),
		Actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kdfir_actions_total", Help: "Actions run, by type and result.",
		}, []string{"action", "result"}),
		ActionLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kdfir_action_duration_seconds", Help: "Action latency, by type.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"action"}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kdfir_http_requests_total", Help: "HTTP requests, by route and status code.",
		}, []string{"route", "code"}),
		AuditEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kdfir_audit_events_received_total", Help: "Audit events received on the webhook.",
		}),
	}
	m.Registry.MustRegister(m.AlertsReceived, m.Actions, m.ActionLatency, m.HTTPRequests, m.AuditEvents)
	return m
}
