"""What a retention run decided and did: its decisions, counts, and the journal's columns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from archiver.naming import Direction
from archiver.purge import MonthPurge

__all__ = ["HELD_REASON", "JOURNAL_COLUMNS", "RETENTION_USER", "Decision", "RetentionReport"]

JOURNAL_COLUMNS = ("run", "service", "direction", "id", "date", "part", "action", "at", "user")
RETENTION_USER = "retention"
# The reason of a record kept because a legal hold covers it (followed by the hold's id).
HELD_REASON = "under legal hold"


@dataclass(slots=True)
class Decision:
    """What retention decided for one old record, and why."""

    service: str
    direction: Direction
    id: int
    date: str
    action: str  # delete | keep | deleted | gone
    reason: str
    part: str = ""


@dataclass(slots=True)
class RetentionReport:
    """The outcome of one retention run."""

    run_id: str
    applied: bool
    decisions: list[Decision] = field(default_factory=list)
    # No longer filled: counting the records younger than the policy cost a listing of every record.
    # Kept so that scripts reading ``retention --json`` find the key they know.
    younger: dict[str, int] = field(default_factory=dict)
    deleted: int = 0
    capped: int = 0  # eligible records kept because the per-run cap was reached: the run failed
    purges: list[MonthPurge] = field(default_factory=list)
    # Records whose archived copy, read back right after archiving them, still differs from the API: they
    # could never be deleted. Reported (log, status, metrics), never kept silently.
    unmatchable: list[Decision] = field(default_factory=list)
    by: str = RETENTION_USER  # who asked: written in the journal
    held: int = 0  # records kept at OVH because a legal hold covers them (reason ``HELD_REASON``)
    holds_active: int = 0  # active legal holds when the run ended

    def count(self, action: str) -> int:
        return sum(1 for decision in self.decisions if decision.action == action)

    @property
    def archive_held(self) -> int:
        """SMS the archive purge kept because a legal hold covers them."""
        return sum(purge.held for purge in self.purges)

    def as_dict(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "applied": self.applied,
            "deleted": self.deleted,
            "capped": self.capped,
            "younger": self.younger,
            "decisions": [asdict(decision) for decision in self.decisions],
            "archive_purges": [asdict(purge) for purge in self.purges],
            "unmatchable": [asdict(decision) for decision in self.unmatchable],
            "by": self.by,
            "held": self.held,
            "archive_held": self.archive_held,
            "holds_active": self.holds_active,
        }
