"""Data: manifests, alignments and frame labels, the synthetic aligned corpus, zero-shot pair sets."""
