"""Models: loading any ViT LOTUS can prune (``loading``) and the embedded default ViT (``default``)."""
