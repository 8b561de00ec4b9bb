"""The exceptions sms-archiver raises, and what each one means for the caller.

    ArchiverError                 base: every failure we anticipate and can explain
    ├── ConfigError               a setting is missing or wrong (exit status 2)
    ├── SourceError               the OVH API failed after retries
    │   ├── ListingCutError       a window's id listing may be cut by OVH and could not be proven whole
    │   ├── AuthError             bad or expired credentials, bad signature (clock skew)
    │   └── NotGrantedError       the consumer key lacks an access rule for a call
    ├── StorageError              the object store failed; nothing past the failure was recorded
    │   └── PreconditionFailed    a conditional write lost a race (someone else wrote first)
    ├── IntegrityError            archived bytes do not match what was recorded at write time
    ├── LeaseHeldError            another instance holds the single-writer lease
    ├── CycleInterrupted          asked to stop (SIGTERM); stopped at a safe point, state consistent
    └── MalformedRecordError      one API record could not be parsed (reported, then skipped)

The CLI maps each class to an exit status in one place (``archiver.cli.EXIT_CODES``).
Messages never contain secrets: build them from names, paths and status codes only.
"""

from __future__ import annotations

__all__ = [
    "ArchiverError",
    "AuthError",
    "ConfigError",
    "CycleInterrupted",
    "IntegrityError",
    "LeaseHeldError",
    "ListingCutError",
    "MalformedRecordError",
    "NotGrantedError",
    "PreconditionFailed",
    "SourceError",
    "StorageError",
]


class ArchiverError(Exception):
    """Base class of every error sms-archiver explains to its user."""


class ConfigError(ArchiverError):
    """A setting is missing or invalid; the message names the setting."""


class SourceError(ArchiverError):
    """The OVH API could not be used (after retries where retrying made sense)."""


class ListingCutError(SourceError):
    """OVH's id listing of a window could not be proven whole (it may have been cut): the cursor stays."""


class AuthError(SourceError):
    """OVH refused the credentials (invalid key, expired consumer key, bad signature)."""


class NotGrantedError(SourceError):
    """The consumer key has no access rule for a call; the message names the rule to add."""


class StorageError(ArchiverError):
    """The object store failed; the operation did not complete."""


class PreconditionFailed(StorageError):
    """A conditional write was refused because the object changed (or exists)."""


class IntegrityError(ArchiverError):
    """Stored bytes do not match their recorded checksum or row count."""


class LeaseHeldError(ArchiverError):
    """Another live instance holds the single-writer lease of a service."""


class CycleInterrupted(ArchiverError):
    """A stop was requested; the work stopped at a safe point (all written data recorded)."""


class MalformedRecordError(ArchiverError):
    """An API record does not have the documented shape; it is never written."""
