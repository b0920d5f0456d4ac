"""Chapter 6's failover drills behind buttons: what a click runs, on a real cluster.

[run_drill][tutorial.scenarios.cluster.run_drill] places alice and bob on two *live*
servers (the chapter killed one above), runs the story and returns its trace; a database
drill uses up one standby each time, and once none is left the widget says why instead
of running. [ClusterDrill][tutorial.widgets.drill.ClusterDrill] draws each run with a new
run number. The drills' own checks (nothing acknowledged lost, under load) are
tests/test_cluster_drills.py; the buttons in a real JupyterLab, tests/jupyterlab.
"""

from __future__ import annotations

import pytest

from tutorial.cluster.cluster import Cluster
from tutorial.scenarios.cluster import DrillUnavailable, drill_blocker, run_drill
from tutorial.widgets.drill import ClusterDrill


def labels(trace: object) -> list[str]:
    return [e.label for e in trace.events]  # type: ignore[attr-defined]


def test_a_cluster_that_cannot_run_a_drill_is_told_why_and_nothing_starts() -> None:
    plain_redis = Cluster(redis_replicas=0, taps=True)
    assert "one plain redis-server" in (drill_blocker(plain_redis, "redis-failover") or "")
    sqlite = Cluster(taps=True)
    assert "no PostgreSQL standby" in (drill_blocker(sqlite, "database-failover") or "")
    assert drill_blocker(sqlite, "redis-failover") is None  # Redis HA is the default
    assert "taps=True" in (drill_blocker(Cluster(), "redis-failover") or "")
    assert "no drill named" in (drill_blocker(sqlite, "kill-everything") or "")


async def test_the_widget_says_why_in_red_and_starts_nothing() -> None:
    cluster = Cluster(taps=True)  # SQLite: no standby to promote
    drill = ClusterDrill(cluster, "database-failover")
    assert 'data-run="0"' in drill.picture.value or "data-run='0'" in drill.picture.value
    assert await drill.run() is None
    assert "cannot run this drill now" in drill.status.value
    assert "data-state='error'" in drill.picture.value
    assert cluster.nginx is None and cluster.dir is None  # nothing was started
    with pytest.raises(ValueError, match="no drill named"):
        ClusterDrill(cluster, "kill-everything")


@pytest.mark.cluster
@pytest.mark.postgres
@pytest.mark.timeout(180)
async def test_each_click_runs_its_drill_for_real_until_no_standby_is_left() -> None:
    cluster = Cluster(servers=3, postgres=True, taps=True)
    await cluster.start()
    try:
        cluster.kill(2)  # as the chapter's kill -9 section does: two servers live
        redis = ClusterDrill(cluster, "redis-failover")
        trace = await redis.run()
        shown = labels(trace)
        assert any(x.startswith("kill -9 redis-") for x in shown), shown
        assert "+switch-master: replica promoted" in shown
        # bob missed the message sent without a master, saw the gap, and repaired it.
        assert any("missing: a gap" in x for x in shown), shown
        assert any(x.startswith("room-joined, history seqs") for x in shown), shown
        ends = {e.source for e in trace.events} | {e.target for e in trace.events}
        assert "server-3" not in ends  # placed on the two live servers only
        assert redis.picture.run == 1 and "✓ ran" in redis.status.value

        database = ClusterDrill(cluster, "database-failover")
        promoted = []
        for _ in range(2):  # two standbys: two promotions
            shown = labels(await database.run())
            assert any("store_unavailable" in x for x in shown), shown
            assert any(x.endswith("again (outbox)") for x in shown), shown
            promoted += [x for x in shown if x.startswith("pg_ctl promote")]
        assert promoted == ["pg_ctl promote replica-1", "pg_ctl promote replica-2"]
        assert database.picture.run == 2

        await database.run()  # none left: said, not attempted
        assert "no standby is left to promote" in database.status.value
        assert database.picture.run == 2
        with pytest.raises(DrillUnavailable, match="no standby"):
            await run_drill(cluster, "database-failover")
    finally:
        await cluster.stop()
