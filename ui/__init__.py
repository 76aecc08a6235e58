"""Second floor: the PySide6 desktop interface."""
