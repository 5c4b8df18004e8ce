"""``wsblock advise TARGET``: measure one workload under every strategy and recommend one.

* :mod:`wsblock.advise.target`: the target checked, the cells planned;
* :mod:`wsblock.advise.predict`: the keepalive outcome at the user's settings,
  predicted from the measured stalls by the boundary model;
* :mod:`wsblock.advise.choose`: the recommendation rule and its reason;
* :mod:`wsblock.advise.command`: the command itself.
"""
