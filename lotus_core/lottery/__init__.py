"""Lottery tickets: iterative magnitude pruning with rewinding (lth.py), Instant Sparse Soup
Pruning (issp.py), the controls that test whether a ticket's topology or its weights matter
(controls.py) and the pieces they share (common.py: schedule, IMP step, stored masks, the ticket
headline and curve). What the dashboard picks and compares is lotus_core.views.catalog."""
