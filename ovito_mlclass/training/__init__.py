"""Training: your own classifiers, and the built-in ones, from labelled snapshots.

``train`` reads a config (``configs/<name>.toml`` for the built-in models, your own file otherwise),
builds the features of labelled :class:`~ovito_mlclass.training.snapshots.Snapshot` files and fits
the network (``network``); ``user_data`` turns your structures and trajectories into such
snapshots, optionally perturbed and run with LAMMPS (``md``: :class:`~.md.LammpsRun`, the NPT run to
the mean box, the kinetic temperature, NPH coexistence for melting points, worker processes).

The MD that generated the built-in models' training data is not installed with the package: it
lives in the repository's ``training_data/`` folder (one script per dataset) and writes its
snapshots into :func:`~ovito_mlclass.training.snapshots.cache_dir`. LAMMPS, ASE and SciPy come with
the ``[md]`` extra and are imported only when MD runs.
"""
