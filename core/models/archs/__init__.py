"""The network families, one module (or package) each; importing one registers it (see :mod:`..registry`).

A new architecture is one file here with one ``@register``: the registry finds
every module of this package on its first lookup.
"""
