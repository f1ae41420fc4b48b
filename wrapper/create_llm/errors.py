"""The one exception the wrapper raises for a user mistake: what went wrong, and what to do."""


class CreateLLMError(Exception):
    """Printed as `Error: <message>` and `Suggestion: <suggestion>`; the command exits 1."""

    def __init__(self, message: str, suggestion: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.suggestion = suggestion
