"""Seed diagram 6, runnable: launchers for N chat servers, nginx, redis-server and
PostgreSQL on loopback and free ports, the fault drills' building blocks, and the
benchmark.

* [tutorial.cluster.cluster][tutorial.cluster.cluster]:
[Cluster][tutorial.cluster.cluster.Cluster], all of it;
* [tutorial.cluster.servers][tutorial.cluster.servers], [nginx][tutorial.cluster.nginx],
  [redis][tutorial.cluster.redis], [postgres][tutorial.cluster.postgres]: one part each;
* [tutorial.cluster.bench][tutorial.cluster.bench] and [baseline][tutorial.cluster.baseline]:
``tutorial bench``;
* [tutorial.cluster.cli][tutorial.cluster.cli]: ``tutorial cluster up`` and ``tutorial bench``.
"""
