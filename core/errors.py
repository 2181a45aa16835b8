"""Errors that callers can act on. The service maps InputError to INVALID_ARGUMENT."""


class InputError(ValueError):
    """Bad input from a caller. `field` names what was wrong (e.g. "depth", "image")."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class MissingWeightsError(FileNotFoundError):
    """A model's checkpoint file is not where it was looked for."""


def image_decode_errors() -> tuple[type[BaseException], ...]:
    """What PIL raises for bytes that are not a decodable image: fuzzing the decoders found each
    of these (a damaged header gives SyntaxError or ValueError; a huge one DecompressionBombError,
    which is no OSError). PIL is imported only when an image is decoded."""
    from PIL import Image, UnidentifiedImageError

    return (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError)
