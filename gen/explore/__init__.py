"""Design-space exploration: ``rnnaccel sweep`` (spec, points, tasks, executors, results table, Pareto fronts).

Layer: above :mod:`rnnaccel.boards` (real builds) and :mod:`rnnaccel.flow` (simulation), below the CLI.
"""
