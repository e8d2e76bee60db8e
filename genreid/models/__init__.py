"""Networks: identity encoder (``id_encoder``), structure encoder, AdaIN decoder, discriminator.

Import the modules directly (``from genreid.models.id_encoder import build_encoder``); this file
stays import-free so loading one network never pulls in the others.
"""
