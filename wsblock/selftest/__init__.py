"""The instrument, measured: ``wsblock selftest``.

Three questions about the harness itself, each answered by real runs of the
engine's server and load processes:

* :mod:`~wsblock.selftest.fidelity`: does the watchdog time a stall of known
  length exactly (``time.sleep`` injected inline into the server's loop)?
* :mod:`~wsblock.selftest.capacity`: how many echoes per second can one load
  process drive, and how close does the harness's server come to a bare
  websockets echo server under that load? What do the lag probe and the
  watchdog cost the server?
* :mod:`~wsblock.selftest.measure`: the parts run, the goals judged, their table and the record.

The server variants (:mod:`~wsblock.selftest.stall_server`,
:mod:`~wsblock.selftest.unprobed_server`, :mod:`~wsblock.selftest.bare_server`)
run in the engine's server process slot (:func:`wsblock.engine.runner.run_processes`),
so everything else (load, window, clean-up) is the engine's own.
"""
