"""Error types whose message is meant for the user as one clear line."""


class R1InterpError(Exception):
    """Base class: the CLI and stage scripts print `error: <message>` and exit 2."""

    hint: str | None = None

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class ConfigError(R1InterpError):
    """params.yaml is malformed: names the key path and what is allowed."""


class ArtifactError(R1InterpError):
    """An input artifact is missing, truncated or fails its schema: names the file."""
