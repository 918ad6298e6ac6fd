"""Prometheus metrics, served at /metrics."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("namjai_events_total", "Platform events received", ["platform", "result"])
PROCESS_SECONDS = Histogram(
    "namjai_process_seconds", "Time to process one stored event (flows, state, outbox)",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
REPORTS = Counter("namjai_reports_total", "Reports submitted", ["urgency"])
OUTBOX = Counter("namjai_outbox_total", "Outbox delivery attempts", ["platform", "result"])
OUTBOX_PENDING = Gauge("namjai_outbox_pending", "Messages waiting in the outbox")
QUOTA_REFUSED = Counter("namjai_quota_refused_total", "Pushes refused for a platform quota", ["platform"])
QUOTA_BLOCKED = Gauge("namjai_quota_blocked", "1 while a platform refuses pushes for its quota", ["platform"])
OUTBOX_FAILED = Gauge("namjai_outbox_failed", "Messages that failed for good (namjai outbox failed / retry)")
