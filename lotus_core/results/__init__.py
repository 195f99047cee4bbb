"""The results subsystem: the SQLite store (``store``: runs, points, blobs, RunStatus), stored resumable runs
(``runs``: run_experiment, the one compute-or-serve primitive), the experiment-kind registry (``registry``)
and background jobs (``jobs``, the only module that imports the huey queue)."""
