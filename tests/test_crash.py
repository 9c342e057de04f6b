"""Crash safety, proven the hard way: a real `poster run` subprocess posting to a slow
stand-in server on 127.0.0.1 is killed with SIGKILL at random moments and restarted; at the
end every promise is checked (the long version is benchmarks/crash.py)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.servers.slow import campaign

KILLS = int(os.environ.get("POSTER_CRASH_KILLS", "15"))


def test_sigkill_at_random_moments_loses_nothing_and_posts_nothing_twice(tmp_path: Path) -> None:
    fig = campaign(tmp_path, kills=KILLS, files=8, seed=int(os.environ.get("POSTER_CRASH_SEED", "7")))
    print(fig.row())
    assert fig.problems == []
    assert fig.kills == KILLS
    assert fig.duplicates == 0  # no caption posted twice
    assert fig.unaccounted == 0  # every accepted post is in the ledger or its job is uncertain
    assert fig.lost == 0  # every file posted or reported
    assert fig.originals_bad == 0  # every original still exists unchanged
    assert fig.jobs == 2 * fig.files  # re-scans after crashes never made a second set of jobs
    assert fig.ledger_ok and fig.clean_exit
    # the server holds every ledgered post, plus at most one per job left uncertain
    assert fig.posted <= fig.accepted <= fig.posted + fig.uncertain
