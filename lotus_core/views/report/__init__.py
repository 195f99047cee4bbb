"""The stakeholder report: one page of stored results for one model, in plain words.

Each section shows one plotly figure and one generated sentence that states the number the figure shows; where
the result behind a section is not stored yet, the section says which dashboard page produces it instead of
failing (:class:`NotStored`, the one error a report catches; any other is a bug and surfaces). The report reads
the results store and recomputes nothing expensive: the dense accuracy comes from :meth:`Context.dense_accuracy`
(stored after the first time), the OMP-vs-LTH similarity from the stored round masks, and the patch-selection
example uses the cheap ``cls`` attention scorer on a few images.

Sections (:data:`SECTIONS`), after the papers the dashboard relates to, one module each:

- :mod:`.sparsity`: dense accuracy, the baseline every result is compared with; the essential-sparsity curve and
  its turning point (Jaiswal et al., NeurIPS 2023); OMP-vs-LTH mask similarity against its chance level (the
  same paper's 96% claim), computed once per LTH run and stored as the result "omp-vs-ticket"; ISSP vs OMP vs LTH
  accuracy (Instant Soup Pruning, Jaiswal et al., ICML 2023; Frankle & Carbin, ICLR 2019);
- :mod:`.patches`: a patch-selection example (a data lottery ticket: the least-attended patches dropped) and the
  lottery-training convergence (lottery data against full images, epoch by epoch);
- :mod:`.speed`: does it run faster: the fastest measured configuration within eps of dense accuracy;
- :mod:`.paper_claims`: each claim of the papers above and of LOTUS beside the stored number that tests it, with
  a verdict and why (:mod:`lotus_core.views.claims`, docs/claims.md).

The runs: :mod:`.stored` (pinned runs, :func:`pinned`, :func:`set_pinned`; what a first report chooses; pinned runs
that disagree are flagged in :attr:`Report.warnings`, never mixed silently). Each section names its runs and where
each was computed (:func:`~lotus_core.results.runs.provenance_label`). :mod:`.build` builds the report;
:mod:`.export` writes it as one self-contained HTML file (plotly.js embedded inline, no CDN), which opens offline.

Accuracies, sparsities and eps are fractions in [0, 1] (eps 0.01: one accuracy point); sentences and figures show
percent, and tolerances in points.
"""
from .build import SECTIONS, build_report
from .export import TABLE_COLUMNS, table_frame
from .model import SECTION_PAGES, TITLES, Report, ReportOptions, Section
from .paper_claims import claims_section
from .patches import convergence_section, patches_section
from .sparsity import comparison_section, dense_section, essential_section, similarity_section, similarity_table
from .speed import speed_section
from .stored import NotStored, Stored, Unreadable, disagreements, pinned, pinned_runs, results_version, set_pinned

__all__ = ["NotStored", "Report", "ReportOptions", "SECTIONS", "SECTION_PAGES", "Section", "Stored", "TABLE_COLUMNS",
           "TITLES", "Unreadable", "build_report", "claims_section", "comparison_section", "convergence_section",
           "dense_section", "disagreements", "essential_section", "patches_section", "pinned", "pinned_runs",
           "results_version", "set_pinned", "similarity_section", "similarity_table", "speed_section", "table_frame"]
