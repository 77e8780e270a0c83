"""The one exception type for problems a user can fix."""


class InputError(Exception):
    """Bad input a user can fix. The message names the file (or value) and what to do."""
