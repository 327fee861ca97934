"""Compare agents on a grid of envs × seeds, with statistics that survive few seeds.

``jacrl compare`` (or :func:`jacrl.compare.pipeline.compare`) trains every cell through
``jacrl.train.train``, then summarises. One module per concern:

- :mod:`~jacrl.compare.variants`: the agent names (the registry's), including ablations
  (``jacobian-d0``);
- :mod:`~jacrl.compare.grid`: cells, one crash-tolerant run, telling finished runs;
- :mod:`~jacrl.compare.backends`: local processes (one per run) or Ray tasks;
- :mod:`~jacrl.compare.runner`: the grid's unfinished runs on a backend, under a progress bar;
- :mod:`~jacrl.compare.results`: the run folders read back as arrays over seeds;
- :mod:`~jacrl.compare.scoring`: returns, or held-out accuracy for classification bandits;
- :mod:`~jacrl.compare.stats`: IQM, bootstrap CIs, steps to threshold (rliable style);
- :mod:`~jacrl.compare.report`, :mod:`~jacrl.compare.plots`: tables, README section, figures;
- :mod:`~jacrl.compare.cli`: ``add_arguments(parser)`` and ``run(args)`` for the ``jacrl`` CLI.

Nothing heavy is imported here, so mounting the CLI stays fast.
"""
