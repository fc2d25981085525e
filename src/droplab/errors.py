"""Errors a user can act on. Stages print these as one clear message, with no traceback."""


class DroplabError(Exception):
    """Bad input or an unreachable source: the message names the file, key or value."""
