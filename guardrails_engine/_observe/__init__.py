"""Observing guarded calls: call records, a SQLite trace store, OpenTelemetry, reports.

Above the policy layer (content capture runs the policy's pii and content checks);
below the adapters, which feed a :class:`~.calls.CallRecorder`.
"""
