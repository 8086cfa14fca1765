"""Feature extractors for the frozen VGG16 base (the part of training that dominates its cost)."""
