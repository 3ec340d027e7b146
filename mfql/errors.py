"""The error types of mfql: each carries one line for the user. ``python -m mfql.<command>`` prints it and exits
with 2 for bad input (options, datasets, checkpoints) and 3 for a run that cannot go on (mfql.config.run_cli)."""


class ConfigError(ValueError):
    """A bad command-line or config value; the message is one line for the user."""


class DatasetError(ValueError):
    """A dataset that is present but damaged, not the one recorded, or not of the task (one line for the user)."""


class CheckpointError(ValueError):
    """A checkpoint or resume state that cannot be used (one line for the user)."""


class ResultError(ValueError):
    """A run folder whose files do not belong together or to the run the suite planned (one line)."""


class DownloadError(RuntimeError):
    """One source could not serve a file (unreachable, HTTP error, checksum mismatch)."""


class RunError(RuntimeError):
    """A run that cannot go on (diverged, folder in use, disk full); one line for the user, exit 3."""
