"""The survival boundary: the job length at which keepalive loses connections.

* :mod:`~wsblock.boundary.search`: the adaptive design (which job length to
  measure next) and the bracketing estimate of each level.
* :mod:`~wsblock.boundary.fit`: a logistic fit of loss against log job length.
* :mod:`~wsblock.boundary.model`: the keepalive model (loss probability from a
  cell's stall pattern); :mod:`~wsblock.boundary.evaluate` holds it against
  the records of a run directory, :mod:`~wsblock.boundary.score` scores it
  out of sample against the fitted rules.
* :mod:`~wsblock.boundary.run`: measures the cells of a search into a run
  directory and writes the summary.
* :mod:`~wsblock.boundary.plan`: the one window of a search's cells, and the time it can take.

See ``docs/boundary.md`` and ``docs/boundary-model.md``.
"""
