"""The spool: a durable journal of write commands the database has not confirmed, and its replay."""

from persistence.spool.journal import SpoolRecord, command_of
from persistence.spool.replay import REPLAY_LOCK, ReplayReport, Spool

__all__ = ["REPLAY_LOCK", "ReplayReport", "Spool", "SpoolRecord", "command_of"]
