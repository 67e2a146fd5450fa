"""Errors a user can act on. The CLI prints them as one line and exits non-zero."""


class FsmiError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2


class BadInputError(FsmiError):
    """An image, mask, manifest or argument that cannot be used as given."""


class IntegrityError(FsmiError):
    """Files on disk no longer match the sha256 recorded for them."""


class MethodError(FsmiError):
    """A method's own code failed outside one edit (its import, ``__init__``, ``setup``, ``preflight``,
    ``weights`` or ``close``), an exception or a ``sys.exit`` alike; the message names the method and the step."""


class MissingWeightsError(FsmiError):
    """A model's weights are not on this machine; the message says what to put where."""
