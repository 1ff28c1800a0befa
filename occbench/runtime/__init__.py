"""How occbench's commands run, below every layer that runs something (the evaluation, the generator, the
reference methods): :mod:`~occbench.runtime.progress` (progress bars that respect ``--quiet``),
:mod:`~occbench.runtime.ticks` (per-frame progress from worker processes), :mod:`~occbench.runtime.processes`
(worker processes that never re-run the caller's script), :mod:`~occbench.runtime.supervision` (helper processes
that die with their parent; ending a pool) and :mod:`~occbench.runtime.interrupts` (Ctrl-C and SIGTERM stop a
command the same way).

This layer imports nothing of occbench outside it (``tests/test_architecture.py``).
"""
