"""``wsblock advise TARGET``: measure one workload under every strategy and recommend one.

* :mod:`wsblock.advise.target`: the target checked and timed, the cells planned;
* :mod:`wsblock.advise.behaviour`: the function's call times and how long it
  holds the GIL at once;
* :mod:`wsblock.advise.predict`: the keepalive outcome at the user's settings
  over one hour, predicted from the measured stalls by the boundary model,
  inside or outside the settings the model was checked at;
* :mod:`wsblock.advise.choose`: the recommendation rule and its reason;
* :mod:`wsblock.advise.concurrency`: for how many calls at once the answer holds;
* :mod:`wsblock.advise.saved`: ``advice.json`` and ``advice.md``, and reading them back;
* :mod:`wsblock.advise.advice`: the run itself: cells measured, judged, printed and kept;
* :mod:`wsblock.advise.fast_advice`: the run of ``--fast``: predicted, then two strategies confirmed.

``wsblock profile TARGET`` predicts the same in seconds, without a server:

* :mod:`wsblock.advise.holdprobe`: how long a call holds the GIL at once,
  from the lateness of a probe thread beside it;
* :mod:`wsblock.advise.profile`: the call's time, GIL holds and what a
  process pool would carry;
* :mod:`wsblock.advise.stallpred`: each strategy's stall pattern and
  keepalive forecast, from the profile;
* :mod:`wsblock.advise.profile_report`: the job profiled, the printed lines and the record.
"""
