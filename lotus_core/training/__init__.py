"""Training and evaluation: the one training loop (``train``), evaluation (``evaluate``), fine-tuning
(``finetune``; its checkpoints in ``fine_tuned``) and the embedded default ViT's training (``default_model``)."""
