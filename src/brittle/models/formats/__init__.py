"""One small module per model format, each a :class:`~.base.ModelFormat` object;
:data:`brittle.models.loaders.MODEL_FORMATS` lists them."""
