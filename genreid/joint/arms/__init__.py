"""The stage-3 methods, one module each, registered with :func:`genreid.registry.register_method`.

The registry imports every module here on first use; a new arm is one more module.
"""
