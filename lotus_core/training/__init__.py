"""Training and evaluation: the one training loop (``train``), fine-tuning (``finetune``), evaluation (``evaluate``)."""
