"""Sub-commands of this area are registered here (being built)."""


def register(sub) -> None:
    return None
