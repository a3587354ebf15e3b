"""Batch scans: a policy applied to many logged texts, in one process, a process
pool or a Dask cluster (see ``guardrails_engine.batch``)."""
