"""Numeric rules: fixed point and the rounding rule, the config, tables, circulant indexing and the fixed-point
FFT form of circulant blocks, weights, the golden model and its error bounds.

Everything the hardware must match bit for bit is defined here once; nothing here imports Amaranth.
"""
