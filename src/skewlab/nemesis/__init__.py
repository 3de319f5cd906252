"""Fault schedules (``[[faults]]`` in the spec): applied during a run and recorded in the
history (``traces/_nemesis/``). The nemesis never judges: the analysis reads the record.

Nothing is re-exported here: the spec imports ``nemesis.schedule`` (a leaf), and this
``__init__`` runs first, so it must not pull in the recorder (pyarrow). Import from the
modules: ``schedule`` (FaultSpec, clock_faults), ``record`` (FaultRecorder, load_faults),
``ntp``, ``link``, ``timed``, ``wiring``.
"""
