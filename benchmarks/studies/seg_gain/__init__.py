"""The segmentation-gain study of ``benchmarks/studies/bench_seg_gain.py`` (the command: its options and ``main``):

* :mod:`.variants`: the typed :class:`~.variants.Variant`, parsed once from the CLI strings;
* :mod:`.study`: the study's constants and small helpers (datasets, its root folder, its regime, logging);
* :mod:`.stages`: the cached stages (data, held-out domains, GAN, pools, oracles, layouts, filters);
* :mod:`.seg`: the segmenter configs, the runs' specs, the child process of one run and the job runner;
* :mod:`.report`: the summary per variant, the plot, the results record and the printed table.

The package imports ``benchmarks/common.py`` as the top-level module ``common`` (``benchmarks/`` on ``sys.path``,
as when a script there is run).
"""
