"""Field types and error helpers shared by the claim and lead contracts.

Cross-field rules report through :func:`raise_all`, the way :mod:`contracts.invoice`
does: every broken rule of one answer becomes one error located at the field to
fix, so a single re-ask can name them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final

from pydantic import StringConstraints, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = ["SAMPLES_DIR", "Email", "field_error", "raise_all"]

#: The labelled samples (``NAME.txt`` + ``NAME.json``) of each example contract.
SAMPLES_DIR: Final = Path(__file__).parent / "samples"

#: An e-mail address as printed: one @, no spaces, a dotted domain. Deliberately
#: loose (no email-validator dependency); the domain rules live in the contracts.
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, max_length=254, pattern=r"^[^@\s<>]+@[^@\s<>]+\.[A-Za-z]{2,}$"
    ),
]


def field_error(
    type_: str,
    template: str,
    loc: tuple[str | int, ...],
    value: object,
    **context: object,
) -> InitErrorDetails:
    """One located error; context values become strings so ``errors()`` stays JSON."""
    ctx = {key: v if isinstance(v, int) else str(v) for key, v in context.items()}
    return InitErrorDetails(type=PydanticCustomError(type_, template, ctx), loc=loc, input=value)


def raise_all(title: str, errors: list[InitErrorDetails]) -> None:
    """Raise every error at once; a no-op when there are none.

    A ValidationError raised in a model validator is merged into the caller's
    error list with each entry's own loc, which a plain PydanticCustomError
    (always located at the model root) could not do.
    """
    if errors:
        raise ValidationError.from_exception_data(title, errors)
