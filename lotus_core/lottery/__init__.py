"""Lottery tickets: iterative magnitude pruning with rewinding (lth.py), Instant Soup Pruning
(issp.py), and the controls that test whether a ticket's topology matters (controls.py)."""
