"""sms-archiver: keep your OVHcloud SMS history forever, as dated CSV files in S3-compatible storage."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
