"""Static analyzers: API ergonomics of paired implementations and library surfaces.

Each module is one family of metrics: a pure function from source text (or an installed
library, read without importing it) to rows for the store.
"""
