"""Preloaded by a process pool's forkserver: it dies with the server.

The forkserver is the parent of the pool's workers (each worker dies with it,
see ``strategies._worker_init``); importing this module makes the forkserver
itself die, by SIGKILL, the moment the server that started it dies, so a
server killed outright leaves no forkserver or worker behind. Import it only
in a process that must die with its parent.
"""

from __future__ import annotations

import signal

from wsblock.engine.proc import die_with_parent

die_with_parent(signal.SIGKILL)
