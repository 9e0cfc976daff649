#!/usr/bin/env python3
"""Worked example: a JapaneseVowels LSTM classifier, compressed, retrained and run on the generated hardware.

JapaneseVowels (UCR/UEA, shipped inside sktime: 9 speakers, 12 LPC cepstrum
channels, 7 to 29 steps per utterance; 270 training and 370 test sequences).
The steps are those of the command line (``rnnaccel import``, ``import -k K``,
``retrain``, ``evaluate``), through the same functions; the shared pipeline is
:mod:`rnnaccel.accuracy.examples` (also behind ``scripts/example_gunpoint.py``):

1. train a dense float LSTM classifier in PyTorch and save it (``dense.pt``);
2. import it exactly (k = 1, 16-bit weights) and check the golden model's accuracy;
3. for each block size k and weight width: import it projected onto
   block-circulant weights, then retrain with the hardware's exact arithmetic
   (``rnnaccel.accuracy.retrain.retrain``); golden-model test accuracy before and after;
   with ``--modes direct,fft`` also, for k = 4, 8, 16, the same projection in the FFT
   circulant mode (weights as fixed-point spectra), retrained with the exact FFT
   forward: the table's FFT column;
4. table and plot of accuracy against weight memory;
5. export the smallest model within ``--tolerance`` points of the dense float
   model, generate its Verilog and simulate it: bit-exact verdict.

    .venv/bin/python scripts/example_vowels.py                 # the full run (a few minutes on 2 cores)
    .venv/bin/python scripts/example_vowels.py --quick --out /tmp/v   # smoke test (tiny model, subsets)
    .venv/bin/python scripts/example_vowels.py --modes direct,fft   # and the FFT column (about twice as long)

Needs the extras ``models`` (torch) and ``examples`` (sktime, matplotlib):
``pip install 'rnnaccel[models,examples]'``; the RTL step needs Icarus
(``apt-get install iverilog``) or ``--rtl-backend verilator|amaranth``.
Results: ``docs/example_vowels.md``.
"""

from __future__ import annotations

from rnnaccel.accuracy.examples import ExampleSpec, main

SPEC = ExampleSpec(
    dataset="JapaneseVowels",
    out="out/vowels",
    hidden=64,
    epochs=100,
    lr=1e-2,
    batch=32,
    retrain_epochs=100,
    retrain_lr=1e-2,
    retrain_batch=32,
    description=__doc__,
)

if __name__ == "__main__":
    raise SystemExit(main(SPEC, doc=__doc__))
