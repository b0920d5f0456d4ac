"""Seed diagram 6, runnable: launchers for N chat servers, nginx, redis-server and
PostgreSQL on loopback and free ports, the fault drills' building blocks, and the
benchmark.

* :mod:`tutorial.cluster.cluster`: :class:`~tutorial.cluster.cluster.Cluster`, all of it;
* :mod:`tutorial.cluster.servers`, :mod:`~tutorial.cluster.nginx`,
  :mod:`~tutorial.cluster.redis`, :mod:`~tutorial.cluster.postgres`: one part each;
* :mod:`tutorial.cluster.bench` and :mod:`~tutorial.cluster.baseline`: ``tutorial bench``;
* :mod:`tutorial.cluster.cli`: ``tutorial cluster up`` and ``tutorial bench``.
"""
