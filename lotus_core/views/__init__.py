"""Views of stored results: the run table (``experiments``), the Masks/Soup tables (``catalog``), the Report
(``report``), the Overview (``overview``) and the plotly figures they share (``figures``)."""
