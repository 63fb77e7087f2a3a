"""Which numeric type a served model runs in: the resolver is `pushgen.models.resolve_dtype`
(with `DTYPES`, the accepted names), imported here so the serving modules keep one import."""

from __future__ import annotations

from pushgen.models import DTYPES, resolve_dtype

__all__ = ["DTYPES", "resolve_dtype"]
