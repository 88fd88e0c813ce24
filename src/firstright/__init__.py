"""firstright: enforce the deals between AI labs, clouds and model vendors."""

__version__ = "0.1.0"
