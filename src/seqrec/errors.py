"""User-facing errors: the CLI prints ``str(error)`` as one line and exits non-zero, with no traceback."""


class SeqrecError(Exception):
    """Base class for errors caused by user input (files, configs, ids); the message names what was wrong."""

    exit_code = 2  # what the CLI exits with after printing the one-line message


class ConfigError(SeqrecError):
    """A config key is unknown or its value is invalid."""


class DataError(SeqrecError):
    """A data file is missing, malformed, empty or inconsistent."""


class CheckpointError(SeqrecError):
    """A checkpoint is missing, corrupted or incompatible."""


class TrainingDiverged(SeqrecError):
    """Training produced a non-finite loss or gradient norm (or no finite validation score): the run stopped."""

    exit_code = 3
