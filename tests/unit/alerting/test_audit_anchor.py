"""A journal cut short (its last records deleted) still chains; only an anchor kept outside the
file tells. The engine's retained status carries that anchor (journal_seq, journal_head), and
``audit verify --expect-head`` checks it."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from typer.testing import CliRunner

from alerting.store import Entry, StateStore, Step
from wardwatch.cli import app

runner = CliRunner()


def test_a_journal_cut_short_is_caught_by_the_anchored_head(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = StateStore(path, site="s1", unit="u1")
    for i in range(5):
        store.commit(Step(journal=[Entry("updated", "2026-01-01T00:00:00+00:00", {"i": i})]),
                     "2026-01-01T00:00:01+00:00")
    seq, head = store.journal_head()
    store.close()
    assert seq == 5
    ok = runner.invoke(app, ["alerting", "audit", "verify", "--db", str(path),
                             "--expect-head", f"{seq}:{head}"])
    assert ok.exit_code == 0 and f"head 5:{head}" in ok.output
    with closing(sqlite3.connect(path)) as db:
        db.execute("DROP TRIGGER journal_no_delete")
        db.execute("DELETE FROM journal WHERE seq >= 4")
        db.commit()
    plain = runner.invoke(app, ["alerting", "audit", "verify", "--db", str(path)])
    assert plain.exit_code == 0  # what is left still chains: the cut cannot be seen inside
    anchored = runner.invoke(app, ["alerting", "audit", "verify", "--db", str(path),
                                   "--expect-head", f"{seq}:{head}"])
    assert anchored.exit_code == 1
    assert "BROKEN at record 5" in anchored.stderr
    bad = runner.invoke(app, ["alerting", "audit", "verify", "--db", str(path),
                              "--expect-head", "five"])
    assert bad.exit_code == 2
