"""Models: loading any ViT LOTUS can prune (``loading``: load_model, from_module), its architecture dict and input
(``arch``), its classifier head (``heads``), checkpoint files (``checkpoint``) and hub models (``timm_models``)."""
