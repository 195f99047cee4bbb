"""The results subsystem: the store (``store``: runs, points, blobs, RunStatus; ``schema``: its SQLite file), every
result's key (``keys``), stored resumable runs (``runs``: run_experiment, the one compute-or-serve primitive), where
a result was computed (``provenance``), leases (``lease``), the experiment-kind registry (``registry``) and where
an experiment's units run (``executors``)."""
