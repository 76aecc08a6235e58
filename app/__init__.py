"""First floor: the workbench's services, with no Qt."""

__version__ = "0.1.0"
