"""The image core: a pure-data image model, a reproducible layer writer, and stores.

Everything else in pallet (build, stacks, rebase, supply chain) reads and writes images only
through this package, and never needs to know which kind of store an image lives in.
"""
