"""User-facing errors: the CLI prints ``str(error)`` as one line and exits non-zero, with no traceback."""


class SeqrecError(Exception):
    """Base class for errors caused by user input (files, configs, ids); the message names what was wrong."""


class ConfigError(SeqrecError):
    """A config key is unknown or its value is invalid."""


class DataError(SeqrecError):
    """A data file is missing, malformed, empty or inconsistent."""


class CheckpointError(SeqrecError):
    """A checkpoint is missing, corrupted or incompatible."""
