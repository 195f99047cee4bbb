"""The results subsystem: the SQLite store (``store``), stored resumable runs (``runs``), background jobs (``jobs``)."""
