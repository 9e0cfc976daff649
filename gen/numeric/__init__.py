"""Numeric rules: fixed point and the rounding rule, the config, tables, circulant indexing, weights,
the golden model and its error bounds.

Everything the hardware must match bit for bit is defined here once; nothing here imports Amaranth.
"""
