"""The stage-3 methods, one module each, registered with :func:`genreid.registry.register_method`.

The registry reads each module's decorator from its source and imports the module when its class is
first asked for; a new arm is one more module.
"""
