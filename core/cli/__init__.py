"""Sub-commands of the headless trainer, one module per group.

Each module exposes ``register(subparsers)`` which adds its sub-commands to the
``python -m core.cli`` parser and sets ``func`` on each (``func(args) -> int``).
"""
