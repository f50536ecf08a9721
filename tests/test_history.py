"""Retention of the version history: by count and age, never the checkpointed versions; a torn
last line (a crash mid-append) is skipped."""

from __future__ import annotations

from pathlib import Path

from layerserve.server.store.history import FilesystemHistory, Retention


def _records(n: int, start_time: float = 1000.0) -> list[dict[str, object]]:
    return [{"version": v, "time": start_time + v, "cause": "set_weights"} for v in range(1, n + 1)]


def test_count_and_age_with_protected_versions() -> None:
    records = _records(10)
    by_count = Retention(keep=3, max_age_s=0).kept(records, protected={2}, now=5000.0)
    assert [r["version"] for r in by_count] == [2, 8, 9, 10]
    by_age = Retention(keep=100, max_age_s=2.5).kept(records, protected={1}, now=1010.0)
    assert [r["version"] for r in by_age] == [1, 8, 9, 10]


def test_filesystem_history_prunes_and_skips_torn_lines(tmp_path: Path) -> None:
    history = FilesystemHistory(tmp_path, Retention(keep=4, max_age_s=0))
    for record in _records(40, start_time=2e9):
        history.append("g", record, lambda: {3})
    path = tmp_path / "history" / "g.jsonl"
    assert len(path.read_bytes().splitlines()) < 40  # pruned on the way, not only when read
    with open(path, "ab") as handle:
        handle.write(b'{"version": 41, "ti')  # a crash in the middle of an append
    history.append("g", {"version": 42, "time": 2e9 + 42, "cause": "restore"}, set)
    assert [r["version"] for r in history.records("g", {3})] == [3, 38, 39, 40, 42]
