"""Errors raised by the domain on bad input. Messages say what to fix and never
contain anything computed from raw data."""


class InvalidInput(ValueError):
    """Analyst- or owner-supplied input is malformed; the message says what to fix."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field

    def to_dict(self) -> dict:
        out = {"error": "invalid_input", "message": str(self)}
        if self.field:
            out["field"] = self.field
        return out
