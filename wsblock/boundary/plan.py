"""A search's plan: one window for every cell, and the time the search can take."""

from __future__ import annotations

import dataclasses
from typing import Any

from wsblock.errors import UsageError


def fixed_window(template: Any) -> Any:
    """The template with one window for every cell of its search.

    The probability of losing a connection grows with the window, so a
    search whose cells had windows sized to each job length would compare
    unlike exposures. Without ``--duration`` every cell gets the window
    ``wsblock run`` would size for a keepalive verdict at the model's
    certain-loss job length (``ping_interval + ping_timeout``), rounded up
    to half a second, and refused above the template's ``max_window``.

    Raises:
        UsageError: The window would be longer than ``max_window``.
    """
    import math

    from wsblock.boundary import model as bm
    from wsblock.engine.runner import plan_window
    from wsblock.schema.keepalive import Keepalive

    if template.duration is not None:
        return template
    certain = bm.certain_loss_job_s(Keepalive.of(template.to_dict()))
    probe = dataclasses.replace(template, work_ms=round(1000.0 * (certain or 1.0), 1)).validate()
    window = math.ceil(2.0 * (plan_window(probe, None).keepalive_s or 10.0)) / 2.0
    if window > template.max_window:
        timeout = "none" if template.ping_timeout is None else f"{template.ping_timeout:g} s"
        raise UsageError(f"a search at ping_interval {template.ping_interval:g} s and ping_timeout {timeout} "
                         f"needs {window:g} s windows, more than --max-window {template.max_window:g}; "
                         f"raise --max-window or give --duration")
    return dataclasses.replace(template, duration=window).validate()


def plan_line(templates: list[Any], budget: int) -> str:
    """The time a search can take, shown before it starts: windows, warm-ups and this machine's overhead.

    An adaptive search stops when its interval is narrow, so this is the
    bound at ``budget`` cells per search (records already there are reused).
    """
    from wsblock.durations import format_duration
    from wsblock.matrix.estimate import cell_estimate_s
    from wsblock.matrix.spec import PlannedCell

    each = [cell_estimate_s(PlannedCell(t, 0)) for t in templates]
    windows = sorted({t.duration for t in templates})
    return (f"{len(templates)} {'search' if len(templates) == 1 else 'searches'}, "
            f"{' / '.join(f'{w:g}' for w in windows)} s windows after {templates[0].warmup:g} s warm-ups, "
            f"about {format_duration(max(each))} a cell, at most {budget} cells each: "
            f"up to about {format_duration(budget * sum(each))}")
