"""Errors that callers can act on. The service maps InputError to INVALID_ARGUMENT."""


class InputError(ValueError):
    """Bad input from a caller. `field` names what was wrong (e.g. "depth", "image")."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class MissingWeightsError(FileNotFoundError):
    """A model's checkpoint file is not where it was looked for."""
