"""Thin adapters onto existing engines: torchrun/DDP for training (:mod:`.ddp`) and Ray Data for
batch tokenization (:mod:`.ray_tokenize`, the ``ray`` extra). The stages themselves stay
engine-free; nothing here is imported unless a job asks for it."""
